// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

interface ILilypadRequests {
    function requestJob(
        string calldata module,
        bytes calldata inputs,
        uint64 deadline,
        uint32 callbackGasLimit
    ) external payable returns (bytes32 requestId);
}

/// @title Example client: asks the network to compute on a string and stores the answer.
/// @notice `ask` escrows msg.value with LilypadRequests; the answer arrives through
/// `onLilypadResult` once the deal serving the request has settled.
contract StringJobClient {
    // Storing a 1 KiB answer costs ~33 slots x 22.1k gas; this covers it with headroom.
    uint32 public constant CALLBACK_GAS = 900_000;

    ILilypadRequests public immutable requests;
    mapping(bytes32 => string) public answers;
    mapping(bytes32 => bool) public answered;
    mapping(bytes32 => bytes) public answerCids; // binary CIDv1 of answers too large to inline
    bytes32 public lastRequestId;

    event Asked(bytes32 indexed requestId);
    event Answered(bytes32 indexed requestId, string answer);
    event AnsweredByCid(bytes32 indexed requestId, bytes cid);

    error OnlyRequests();

    constructor(address requests_) {
        requests = ILilypadRequests(requests_);
    }

    /// @param inputs the module's parameters as the bridge reads them (JSON object, UTF-8)
    function ask(string calldata module, bytes calldata inputs, uint64 deadline)
        external
        payable
        returns (bytes32 requestId)
    {
        requestId = requests.requestJob{value: msg.value}(module, inputs, deadline, CALLBACK_GAS);
        lastRequestId = requestId;
        emit Asked(requestId);
    }

    /// An answer over 1 KiB arrives as its CID (`outputIsCid`): it is stored as such in
    /// `answerCids`, and the bytes are fetched off chain from the nodes that ran the job.
    function onLilypadResult(bytes32 requestId, bytes32, bytes calldata output, bool outputIsCid)
        external
    {
        if (msg.sender != address(requests)) revert OnlyRequests();
        answered[requestId] = true;
        if (outputIsCid) {
            answerCids[requestId] = output;
            emit AnsweredByCid(requestId, output);
            return;
        }
        answers[requestId] = string(output);
        emit Answered(requestId, string(output));
    }

    /// Refunds of the escrow (an unused part, or all of it after the deadline) are withdrawn to
    /// here.
    receive() external payable {}
}
