// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

interface ILilypadRequests {
    enum Mode {
        Attested,
        Optimistic
    }

    struct Policy {
        address[] mediators;
        uint8 threshold;
        Mode mode;
        uint128 bond;
        uint32 challengeWindow;
    }

    function requestJob(
        string calldata module,
        bytes calldata inputs,
        uint64 deadline,
        uint32 callbackGasLimit,
        Policy calldata policy
    ) external payable returns (bytes32 requestId);

    function owed(address account) external view returns (uint256);
    function withdraw() external;
}

/// @title Example client: asks the network to compute on a string and stores the answer.
/// @notice `ask` escrows msg.value with LilypadRequests under the owner's trust policy (which
/// mediators, how many must agree, attested or optimistic); the answer arrives through
/// `onLilypadResult` once that consortium backs it. Unused escrow, refunds and forfeited bonds
/// are credited to this contract in LilypadRequests; `withdrawChange` sends them to the owner.
contract StringJobClient {
    // Storing a 1 KiB answer costs ~33 slots x 22.1k gas; this covers it with headroom.
    uint32 public constant CALLBACK_GAS = 900_000;

    ILilypadRequests public immutable requests;
    address public immutable owner;
    mapping(bytes32 => string) public answers;
    mapping(bytes32 => bool) public answered;
    mapping(bytes32 => bytes) public answerCids; // binary CIDv1 of answers too large to inline
    bytes32 public lastRequestId;

    event Asked(bytes32 indexed requestId);
    event Answered(bytes32 indexed requestId, string answer);
    event AnsweredByCid(bytes32 indexed requestId, bytes cid);

    error OnlyRequests();
    error OnlyOwner();
    error TransferFailed();

    constructor(address requests_) {
        requests = ILilypadRequests(requests_);
        owner = msg.sender;
    }

    /// @param inputs the module's parameters as the bridge reads them (JSON object, UTF-8)
    function ask(
        string calldata module,
        bytes calldata inputs,
        uint64 deadline,
        ILilypadRequests.Policy calldata policy
    ) external payable returns (bytes32 requestId) {
        if (msg.sender != owner) revert OnlyOwner();
        requestId = requests.requestJob{value: msg.value}(
            module, inputs, deadline, CALLBACK_GAS, policy
        );
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

    /// Pull what LilypadRequests owes this contract (change, refunds, forfeited bonds) and send
    /// everything this contract holds to the owner.
    function withdrawChange() external {
        if (msg.sender != owner) revert OnlyOwner();
        if (requests.owed(address(this)) != 0) requests.withdraw();
        (bool ok,) = owner.call{value: address(this).balance}("");
        if (!ok) revert TransferFailed();
    }

    receive() external payable {
        if (msg.sender != address(requests)) revert OnlyRequests();
    }
}
