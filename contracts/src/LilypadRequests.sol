// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// The part of LilypadSettlement this contract reads (views only: it never moves settlement
/// money, so it cannot change a deal's outcome or its gas).
interface ISettlementView {
    struct DealTerms {
        address jobCreator;
        address provider;
        uint128 payment;
        uint128 collateral;
        uint128 mediationFee;
        bytes32 mediatorsHash;
        uint8 threshold;
        uint64 resultDeadline;
        uint64 acceptanceWindow;
        uint64 mediationWindow;
        bytes32 jobHash;
    }

    function dealDigest(DealTerms calldata deal) external view returns (bytes32);
    function domainSeparator() external view returns (bytes32);
    function deals(bytes32 dealId)
        external
        view
        returns (
            uint8 status,
            uint40 since,
            uint32 unpaidSigners,
            uint8 signerCount,
            bytes20 prefix,
            uint8 outcome
        );
}

/// What a contract that asks for computation implements. `output` is the job's output file when
/// it fits MAX_OUTPUT_BYTES; otherwise `outputIsCid` is set and `output` is the binary CIDv1 (raw
/// codec, sha2-256) of the output tarball, i.e. 0x01551220 ++ resultHash, under which the nodes
/// that ran the job hold the bytes.
interface ILilypadResultReceiver {
    function onLilypadResult(
        bytes32 requestId,
        bytes32 resultHash,
        bytes calldata output,
        bool outputIsCid
    ) external;
}

/// @title lilypad-p2p on-chain job requests with result callbacks.
/// @notice Any contract (or account) calls `requestJob` with the most it will pay; the payment
/// stays here in escrow. A bridge node runs the job on the network as the deal's job creator,
/// paying from its own settlement account. Once the deal is settled on the settlement contract,
/// anyone may `deliver` it: this contract checks, on chain and on nobody's word,
///  - the deal was made for this request: its Job salt is the request id (which binds chain id,
///    this contract and the request's contents) and its module hash is the request's;
///  - the deal is settled on this chain's settlement contract (status Settled: the job creator's
///    Acceptance of `resultHash`; TimedOutAcceptance: provider paid, recorded prefix matches; or
///    Resolved with a k-of-n ProviderCorrect verdict, which upheld the recorded prefix);
///  - the provider's signed ResultCommitment and (when Settled) the job creator's Acceptance both
///    name `resultHash`, under the settlement contract's EIP-712 domain (so this chain only);
///  - `resultHash` = sha256(tarball): the node's result hash is the sha2-256 of the canonical
///    output tarball, so the tarball itself is delivered and the output is its first entry, a
///    regular file; one larger than MAX_OUTPUT_BYTES is delivered as its tarball's CID.
///    (`deliverCid` skips the tarball for outputs too large for calldata: only the deal's job
///    creator may call it, and the one thing it decides is "CID instead of bytes".)
/// Then it reimburses the deal's job creator the deal's payment (pull), refunds the rest of the
/// escrow to the requester (pull), marks the request delivered and only then calls the requester
/// back with bounded gas, recording failure instead of reverting. A request nobody delivers is
/// refunded after its deadline. A deal the mediators ruled ProviderWrong or NonDeterministic
/// delivers nothing: anyone may `refundFailed` its request at once (NonDeterministic: the job
/// creator, who paid the provider as the verdict says, is reimbursed the deal's payment;
/// ProviderWrong: the requester gets all its escrow back).
contract LilypadRequests {
    enum RequestStatus {
        None,
        Pending,
        Delivered,
        Refunded
    }

    struct Request {
        address requester;
        uint64 deadline; // unix seconds; refundable after it
        uint32 callbackGasLimit;
        RequestStatus status;
        uint128 escrow; // wei: the most the requester pays
        bytes32 moduleHash; // keccak256(module), as in the deal's Job
    }

    uint256 public constant MAX_OUTPUT_BYTES = 1024;
    uint256 public constant MAX_CALLBACK_GAS = 1_000_000;
    uint256 public constant MAX_INPUT_BYTES = 4096;
    // Gas kept back for the bookkeeping after the callback returns.
    uint256 private constant CALLBACK_RESERVE = 10_000;
    uint256 private constant TAR_BLOCK = 512;
    uint8 private constant STATUS_SETTLED = 4;
    uint8 private constant STATUS_TIMED_OUT_ACCEPTANCE = 6;
    uint8 private constant STATUS_RESOLVED = 8;
    uint8 private constant OUTCOME_PROVIDER_CORRECT = 1;
    uint8 private constant OUTCOME_PROVIDER_WRONG = 2;
    uint8 private constant OUTCOME_NON_DETERMINISTIC = 3;
    // Binary CIDv1 prefix: version 1, raw codec (0x55), sha2-256 multihash (0x12) of 32 bytes.
    bytes4 private constant CID_PREFIX = 0x01551220;
    uint256 private constant HALF_CURVE_ORDER =
        0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;
    bytes32 private constant JOB_TYPEHASH =
        keccak256("Job(bytes32 jobSpecHash,bytes32 moduleHash,bytes32 salt)");
    bytes32 private constant ACCEPTANCE_TYPEHASH =
        keccak256("Acceptance(bytes32 dealId,bytes32 resultHash)");
    bytes32 private constant RESULT_COMMITMENT_TYPEHASH =
        keccak256("ResultCommitment(bytes32 dealId,bytes32 resultHash)");

    ISettlementView public immutable settlement;
    uint256 public requestCount;
    mapping(bytes32 => Request) public requests;
    mapping(address => uint256) public owed; // withdrawable wei
    mapping(bytes32 => bytes32) public deliveredDeal; // requestId -> dealId
    bool private transient withdrawing;

    event JobRequested(
        bytes32 indexed requestId,
        address indexed requester,
        string module,
        bytes inputs,
        uint256 maxPrice,
        uint64 deadline,
        uint32 callbackGasLimit
    );
    event ResultDelivered(
        bytes32 indexed requestId,
        bytes32 indexed dealId,
        bytes32 resultHash,
        uint256 paid,
        bool outputIsCid,
        bool callbackSucceeded
    );
    event RequestFailed(
        bytes32 indexed requestId, bytes32 indexed dealId, uint8 outcome, uint256 reimbursed
    );
    event RequestRefunded(bytes32 indexed requestId, uint256 amount);
    event Withdrawn(address indexed account, uint256 amount);

    error ZeroAmount();
    error InputsTooLarge(uint256 size);
    error CallbackGasTooHigh(uint256 requested);
    error DeadlinePassed(uint64 deadline);
    error NotPending(bytes32 requestId, RequestStatus status);
    error TooEarly(uint64 deadline);
    error WrongJob();
    error DealNotSettled(bytes32 dealId, uint8 status);
    error DealNotFailed(bytes32 dealId, uint8 status, uint8 outcome);
    error NotJobCreator(address caller);
    error ResultMismatch();
    error PriceAboveEscrow(uint256 payment, uint256 escrow);
    error BadSignature();
    error WrongSigner(address expected, address recovered);
    error MalformedTarball(string reason);
    error NotEnoughGasForCallback(uint256 available, uint256 needed);
    error TransferFailed();
    error Reentrancy();

    constructor(address settlement_) {
        settlement = ISettlementView(settlement_);
    }

    /// @notice Ask the network to run `module` on `inputs`; msg.value is the most you pay.
    /// `inputs` are public (they go into an event). Returns the request id, which is also the
    /// salt of the deal that serves it.
    function requestJob(
        string calldata module,
        bytes calldata inputs,
        uint64 deadline,
        uint32 callbackGasLimit
    ) external payable returns (bytes32 requestId) {
        if (msg.value == 0 || msg.value > type(uint128).max) revert ZeroAmount();
        if (inputs.length > MAX_INPUT_BYTES) revert InputsTooLarge(inputs.length);
        if (callbackGasLimit > MAX_CALLBACK_GAS) revert CallbackGasTooHigh(callbackGasLimit);
        if (deadline <= block.timestamp) revert DeadlinePassed(deadline);
        uint256 nonce = requestCount++;
        bytes32 moduleHash = keccak256(bytes(module));
        requestId = keccak256(
            abi.encode(
                block.chainid,
                address(this),
                nonce,
                msg.sender,
                moduleHash,
                keccak256(inputs),
                msg.value,
                deadline,
                callbackGasLimit
            )
        );
        requests[requestId] = Request(
            msg.sender, deadline, callbackGasLimit, RequestStatus.Pending, uint128(msg.value),
            moduleHash
        );
        emit JobRequested(
            requestId, msg.sender, module, inputs, msg.value, deadline, callbackGasLimit
        );
    }

    /// @notice Deliver the result of a settled deal made for `requestId` (anyone may call).
    /// @param jobSpecHash the deal's Job.jobSpecHash (its Job.salt must be requestId)
    /// @param tarball the canonical output tarball whose sha256 the provider committed to
    function deliver(
        bytes32 requestId,
        ISettlementView.DealTerms calldata deal,
        bytes32 jobSpecHash,
        bytes calldata tarball,
        bytes calldata sigProvider,
        bytes calldata sigJobCreator
    ) external returns (bool callbackSucceeded) {
        Request storage request = _pendingFor(requestId, deal, jobSpecHash);
        bytes32 resultHash = sha256(tarball);
        bytes32 dealId = _checkSettled(deal, resultHash, sigProvider, sigJobCreator);
        (bytes calldata file, bool fits) = _firstFile(tarball);
        bytes memory output = fits ? file : abi.encodePacked(CID_PREFIX, resultHash);
        return _complete(request, requestId, deal, dealId, resultHash, output, !fits);
    }

    /// @notice Deliver a settled deal's result by CID without posting its tarball (for outputs
    /// too large for calldata). Only the deal's job creator, who verified the output, may choose
    /// this; the result hash is still checked against the provider's commitment and settlement.
    function deliverCid(
        bytes32 requestId,
        ISettlementView.DealTerms calldata deal,
        bytes32 jobSpecHash,
        bytes32 resultHash,
        bytes calldata sigProvider,
        bytes calldata sigJobCreator
    ) external returns (bool callbackSucceeded) {
        if (msg.sender != deal.jobCreator) revert NotJobCreator(msg.sender);
        Request storage request = _pendingFor(requestId, deal, jobSpecHash);
        bytes32 dealId = _checkSettled(deal, resultHash, sigProvider, sigJobCreator);
        bytes memory cid = abi.encodePacked(CID_PREFIX, resultHash);
        return _complete(request, requestId, deal, dealId, resultHash, cid, true);
    }

    /// @notice Close a request whose deal was resolved ProviderWrong or NonDeterministic (anyone
    /// may call): nothing is delivered. NonDeterministic verdicts pay the provider, so the job
    /// creator is reimbursed the deal's payment and the requester gets the rest; after
    /// ProviderWrong the job creator already got its payment back, so the requester gets all.
    function refundFailed(
        bytes32 requestId,
        ISettlementView.DealTerms calldata deal,
        bytes32 jobSpecHash
    ) external {
        Request storage request = _pendingFor(requestId, deal, jobSpecHash);
        bytes32 dealId = settlement.dealDigest(deal);
        (uint8 status,,,,, uint8 outcome) = settlement.deals(dealId);
        if (
            status != STATUS_RESOLVED
                || (outcome != OUTCOME_PROVIDER_WRONG && outcome != OUTCOME_NON_DETERMINISTIC)
        ) revert DealNotFailed(dealId, status, outcome);
        uint256 reimbursed = outcome == OUTCOME_NON_DETERMINISTIC ? deal.payment : 0;
        request.status = RequestStatus.Refunded;
        if (reimbursed != 0) owed[deal.jobCreator] += reimbursed;
        owed[request.requester] += request.escrow - reimbursed;
        emit RequestFailed(requestId, dealId, outcome, reimbursed);
        emit RequestRefunded(requestId, request.escrow - reimbursed);
    }

    /// @notice Give the escrow back to the requester of an undelivered request past its deadline.
    function refund(bytes32 requestId) external {
        Request storage request = requests[requestId];
        if (request.status != RequestStatus.Pending) revert NotPending(requestId, request.status);
        if (block.timestamp <= request.deadline) revert TooEarly(request.deadline);
        request.status = RequestStatus.Refunded;
        owed[request.requester] += request.escrow;
        emit RequestRefunded(requestId, request.escrow);
    }

    function withdraw() external {
        if (withdrawing) revert Reentrancy();
        withdrawing = true;
        uint256 amount = owed[msg.sender];
        if (amount == 0) revert ZeroAmount();
        owed[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed();
        withdrawing = false;
    }

    // ---------------------------------------------------------------- internals

    /// @dev The pending request `deal` was made for: its Job salt is the request id, its module
    /// the request's, and its price within the escrow.
    function _pendingFor(
        bytes32 requestId,
        ISettlementView.DealTerms calldata deal,
        bytes32 jobSpecHash
    ) private view returns (Request storage request) {
        request = requests[requestId];
        if (request.status != RequestStatus.Pending) revert NotPending(requestId, request.status);
        bytes32 jobHash = keccak256(
            abi.encode(JOB_TYPEHASH, jobSpecHash, request.moduleHash, requestId)
        );
        if (deal.jobHash != jobHash) revert WrongJob();
        if (deal.payment > request.escrow) revert PriceAboveEscrow(deal.payment, request.escrow);
    }

    /// @dev Pay, mark delivered, then call back (effects before the external call).
    function _complete(
        Request storage request,
        bytes32 requestId,
        ISettlementView.DealTerms calldata deal,
        bytes32 dealId,
        bytes32 resultHash,
        bytes memory output,
        bool outputIsCid
    ) private returns (bool callbackSucceeded) {
        uint256 change = request.escrow - deal.payment;
        request.status = RequestStatus.Delivered;
        deliveredDeal[requestId] = dealId;
        owed[deal.jobCreator] += deal.payment;
        if (change != 0) owed[request.requester] += change;

        callbackSucceeded = _callBack(request.requester, request.callbackGasLimit,
            abi.encodeCall(ILilypadResultReceiver.onLilypadResult,
                (requestId, resultHash, output, outputIsCid)));
        emit ResultDelivered(
            requestId, dealId, resultHash, deal.payment, outputIsCid, callbackSucceeded
        );
    }

    function _checkSettled(
        ISettlementView.DealTerms calldata deal,
        bytes32 resultHash,
        bytes calldata sigProvider,
        bytes calldata sigJobCreator
    ) private view returns (bytes32 dealId) {
        dealId = settlement.dealDigest(deal);
        (uint8 status,,,, bytes20 prefix, uint8 outcome) = settlement.deals(dealId);
        bytes32 separator = settlement.domainSeparator();
        _requireSigner(
            _typed(separator, keccak256(abi.encode(RESULT_COMMITMENT_TYPEHASH, dealId, resultHash))),
            sigProvider,
            deal.provider
        );
        if (status == STATUS_SETTLED) {
            _requireSigner(
                _typed(separator, keccak256(abi.encode(ACCEPTANCE_TYPEHASH, dealId, resultHash))),
                sigJobCreator,
                deal.jobCreator
            );
        } else if (
            status == STATUS_TIMED_OUT_ACCEPTANCE
                || (status == STATUS_RESOLVED && outcome == OUTCOME_PROVIDER_CORRECT)
        ) {
            // The provider was paid for the recorded result (by timeout or by the verdict,
            // which upheld exactly the recorded prefix); its commitment names the full hash.
            if (prefix != bytes20(resultHash)) revert ResultMismatch();
        } else {
            revert DealNotSettled(dealId, status);
        }
    }

    /// @dev The data of the tarball's first entry, which must be a regular file (ustar typeflag
    /// '0'), and whether it fits MAX_OUTPUT_BYTES (if not, the data is empty). The node's
    /// canonical tarball sorts entries by path, has no PAX header for short ASCII names, and pads
    /// to 10 KiB records.
    function _firstFile(bytes calldata tarball)
        private
        pure
        returns (bytes calldata data, bool fits)
    {
        if (tarball.length < 2 * TAR_BLOCK) revert MalformedTarball("short");
        bytes1 kind = tarball[156];
        if (kind != "0" && kind != 0) revert MalformedTarball("first entry is not a file");
        uint256 size;
        for (uint256 i = 124; i < 136; ++i) {
            uint8 digit = uint8(tarball[i]);
            if (digit == 0 || digit == 0x20) break;
            if (digit < 0x30 || digit > 0x37) revert MalformedTarball("size");
            size = size * 8 + (digit - 0x30);
        }
        if (TAR_BLOCK + size > tarball.length) revert MalformedTarball("truncated");
        fits = size <= MAX_OUTPUT_BYTES;
        data = tarball[TAR_BLOCK:TAR_BLOCK + (fits ? size : 0)];
    }

    /// @dev Call `target` with at most `gasLimit` gas, copying no return data (a returndata bomb
    /// costs the caller nothing). Refuses to run when the transaction could not give the callback
    /// its full allowance (63/64 rule), so a deliverer cannot starve it into a recorded failure.
    function _callBack(address target, uint256 gasLimit, bytes memory data)
        private
        returns (bool ok)
    {
        if (target.code.length == 0) return true;
        uint256 needed = gasLimit + gasLimit / 63 + CALLBACK_RESERVE;
        if (gasleft() < needed) revert NotEnoughGasForCallback(gasleft(), needed);
        assembly ("memory-safe") {
            ok := call(gasLimit, target, 0, add(data, 0x20), mload(data), 0, 0)
        }
    }

    function _typed(bytes32 separator, bytes32 structHash) private pure returns (bytes32) {
        return keccak256(abi.encodePacked(hex"1901", separator, structHash));
    }

    function _requireSigner(bytes32 digest, bytes calldata signature, address expected)
        private
        pure
    {
        if (signature.length != 65) revert BadSignature();
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (uint256(s) > HALF_CURVE_ORDER || (v != 27 && v != 28)) revert BadSignature();
        address recovered = ecrecover(digest, v, r, s);
        if (recovered == address(0) || recovered != expected) {
            revert WrongSigner(expected, recovered);
        }
    }
}
