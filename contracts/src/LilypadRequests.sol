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

/// @title lilypad-p2p on-chain job requests whose results carry the requester's own trust.
/// @notice A request names what it wants (module, inputs, the most it pays, a deadline) and whom
/// it trusts: a consortium of n mediator addresses and a threshold k. A result reaches the
/// callback only with that consortium's backing. A bridge first `claim`s the request with the
/// request's bond (only the claimant can be paid, so no faster party can take what it funded),
/// runs a deal on the settlement contract as its job creator (Job salt = the request id, the
/// request's module), and `postResult`s the sha256 of the output tarball, committing to it
/// before any mediator has revealed one. Then, chosen per request:
///  - Attested: k of the n mediators re-run the request (module and inputs as the request event
///    states them) and each `vote`s the hash it got: k votes for the posted hash make it final;
///    k for another overturn it (the claimant's bond goes to the requester; the request is open
///    again for another bridge).
///  - Optimistic: during the challenge window anyone may `challenge` the posted hash with an
///    equal bond; the consortium then votes: upheld, the challenger's bond goes to the claimant;
///    overturned, the claimant's bond goes half to the challenger, half to the requester, and
///    the request is open again. Unchallenged, the result is final when the window ends.
/// Nothing else is trusted: no bridge, no settlement-contract mediator, no deal's own parties.
/// On delivery of a final result (the tarball whose sha256 it is; the claimant may send the CID
/// instead) the claimant is reimbursed its deal's payment (within the escrow and actually paid
/// to the provider) and gets its bond back; the requester gets the rest, then its callback.
/// Deadline: claims and posts by the deadline, refunds only after it: a bridge that posted in
/// time is paid once its result is final, however late the consortium or the reveal.
contract LilypadRequests {
    enum Mode {
        Attested,
        Optimistic
    }

    enum Status {
        None,
        Open, // waiting for a bridge to claim it
        Claimed, // a bridge serves it
        Posted, // optimistic: result posted, challenge window running
        Challenged, // optimistic: the consortium is asked to rule
        Upheld, // the consortium upheld the posted result: final
        Delivered,
        Refunded
    }

    /// The requester's choice of trust and mode.
    struct Policy {
        address[] mediators; // ascending, distinct
        uint8 threshold; // k
        Mode mode;
        uint128 bond; // wei a claimant (and a challenger) puts up
        uint32 challengeWindow; // seconds (optimistic only)
    }

    struct Request {
        address requester;
        uint64 deadline; // unix seconds: claims and posts by then
        uint32 callbackGasLimit;
        Status status;
        Mode mode;
        uint8 threshold;
        uint8 round; // times a posted result was overturned
        uint32 challengeWindow;
        uint64 postedAt; // when the result was posted, or (optimistic) challenged
        uint128 escrow; // wei: the most the requester pays
        uint128 bond;
        uint128 payment; // the claimant's deal payment, fixed at posting
        bytes32 moduleHash; // keccak256(module), as in the deal's Job
        bytes32 consortiumHash; // keccak256(abi.encode(mediators))
        address claimant;
        address challenger;
        bytes32 resultHash; // the posted hash
    }

    uint256 public constant MAX_OUTPUT_BYTES = 1024;
    uint256 public constant MAX_CALLBACK_GAS = 1_000_000;
    uint256 public constant MAX_INPUT_BYTES = 4096;
    uint256 public constant MAX_MEDIATORS = 16;
    uint256 public constant MAX_CHALLENGE_WINDOW = 30 days;
    uint256 public constant MAX_REQUEST_LIFE = 365 days;
    // A consortium that does not rule (on an attested post, or a challenge) within this time
    // ends the request: bonds go back and the requester is refunded.
    uint256 public constant RULING_WINDOW = 1 days;
    // A claimant whose result is final but who does not deliver it within this time (after the
    // deadline or the challenge window) forfeits its bond and the requester is refunded.
    uint256 public constant REVEAL_WINDOW = 1 days;
    // Gas kept back for the bookkeeping after the callback returns.
    uint256 private constant CALLBACK_RESERVE = 10_000;
    uint256 private constant TAR_BLOCK = 512;
    uint8 private constant STATUS_SETTLED = 4;
    uint8 private constant STATUS_TIMED_OUT_ACCEPTANCE = 6;
    uint8 private constant STATUS_RESOLVED = 8;
    uint8 private constant OUTCOME_PROVIDER_CORRECT = 1;
    uint8 private constant OUTCOME_NON_DETERMINISTIC = 3;
    // Binary CIDv1 prefix: version 1, raw codec (0x55), sha2-256 multihash (0x12) of 32 bytes.
    bytes4 private constant CID_PREFIX = 0x01551220;
    bytes32 private constant JOB_TYPEHASH =
        keccak256("Job(bytes32 jobSpecHash,bytes32 moduleHash,bytes32 salt)");

    ISettlementView public immutable settlement;
    uint256 public requestCount;
    mapping(bytes32 => Request) public requests;
    mapping(address => uint256) public owed; // withdrawable wei
    // keccak256(requestId, round) => mediator => has voted; => result hash => votes
    mapping(bytes32 => mapping(address => bool)) public voted;
    mapping(bytes32 => mapping(bytes32 => uint256)) public votes;
    bool private transient withdrawing;

    event JobRequested(
        bytes32 indexed requestId,
        address indexed requester,
        string module,
        bytes inputs,
        uint256 maxPrice,
        uint64 deadline,
        uint32 callbackGasLimit,
        Policy policy
    );
    event Claimed(bytes32 indexed requestId, address indexed claimant);
    event Voted(bytes32 indexed requestId, address indexed mediator, uint8 round, bytes32 hash);
    event ResultPosted(
        bytes32 indexed requestId,
        address indexed claimant,
        bytes32 indexed dealId,
        bytes32 resultHash,
        uint256 payment
    );
    event Challenged(bytes32 indexed requestId, address indexed challenger, bytes32 resultHash);
    event Ruled(bytes32 indexed requestId, bool upheld, bytes32 resultHash, bytes32 majorityHash);
    event ResultDelivered(
        bytes32 indexed requestId,
        address indexed claimant,
        bytes32 resultHash,
        uint256 paid,
        bool outputIsCid,
        bool callbackSucceeded
    );
    event RequestRefunded(bytes32 indexed requestId, uint256 amount, uint256 forfeitedBond);
    event Withdrawn(address indexed account, uint256 amount);

    error ZeroAmount();
    error InputsTooLarge(uint256 size);
    error CallbackGasTooHigh(uint256 requested);
    error DeadlinePassed(uint64 deadline);
    error BadPolicy(string reason);
    error WrongStatus(bytes32 requestId, Status status);
    error WrongMode(bytes32 requestId);
    error WrongBond(uint256 sent, uint256 bond);
    error NotClaimant(address caller);
    error NotConsortium(address caller);
    error AlreadyVoted(address mediator);
    error TooEarly(uint64 until);
    error WindowClosed(uint64 closed);
    error WrongJob();
    error DealNotPaid(bytes32 dealId, uint8 status, uint8 outcome);
    error NotBacked(bytes32 requestId);
    error ResultMismatch(bytes32 expected, bytes32 delivered);
    error PriceAboveEscrow(uint256 payment, uint256 escrow);
    error MalformedTarball(string reason);
    error NotEnoughGasForCallback(uint256 available, uint256 needed);
    error TransferFailed();
    error Reentrancy();

    constructor(address settlement_) {
        settlement = ISettlementView(settlement_);
    }

    /// @notice Ask the network to run `module` on `inputs` (public: they go into an event; a
    /// JSON object of module parameters, which may name a CID), trusting `policy`'s consortium.
    /// msg.value is the most you pay. The request id binds all of it and is the salt of the
    /// deal that serves the request.
    function requestJob(
        string calldata module,
        bytes calldata inputs,
        uint64 deadline,
        uint32 callbackGasLimit,
        Policy calldata policy
    ) external payable returns (bytes32 requestId) {
        if (msg.value == 0 || msg.value > type(uint128).max) revert ZeroAmount();
        if (inputs.length > MAX_INPUT_BYTES) revert InputsTooLarge(inputs.length);
        if (callbackGasLimit > MAX_CALLBACK_GAS) revert CallbackGasTooHigh(callbackGasLimit);
        if (deadline <= block.timestamp) revert DeadlinePassed(deadline);
        if (deadline > block.timestamp + MAX_REQUEST_LIFE) revert BadPolicy("deadline too far");
        bytes32 consortiumHash = _checkPolicy(policy);
        bytes32 moduleHash = keccak256(bytes(module));
        requestId = keccak256(
            abi.encode(
                block.chainid,
                address(this),
                requestCount++,
                msg.sender,
                moduleHash,
                keccak256(inputs),
                msg.value,
                deadline,
                callbackGasLimit,
                keccak256(abi.encode(policy))
            )
        );
        Request storage request = requests[requestId];
        request.requester = msg.sender;
        request.deadline = deadline;
        request.callbackGasLimit = callbackGasLimit;
        request.status = Status.Open;
        request.mode = policy.mode;
        request.threshold = policy.threshold;
        request.challengeWindow = policy.challengeWindow;
        request.escrow = uint128(msg.value);
        request.bond = policy.bond;
        request.moduleHash = moduleHash;
        request.consortiumHash = consortiumHash;
        emit JobRequested(
            requestId, msg.sender, module, inputs, msg.value, deadline, callbackGasLimit, policy
        );
    }

    /// @notice Become the one bridge that serves (and is paid for) the request; msg.value must
    /// be the request's bond. Claim before funding a deal: no one else can then be paid for it.
    function claim(bytes32 requestId) external payable {
        Request storage request = _inStatus(requestId, Status.Open);
        if (block.timestamp > request.deadline) revert DeadlinePassed(request.deadline);
        if (msg.value != request.bond) revert WrongBond(msg.value, request.bond);
        request.status = Status.Claimed;
        request.claimant = msg.sender;
        emit Claimed(requestId, msg.sender);
    }

    /// @notice The claimant commits (by the deadline) to the sha256 of the output tarball of
    /// the deal it ran for the request. Attested: the consortium's votes start; optimistic: the
    /// challenge window starts.
    function postResult(
        bytes32 requestId,
        ISettlementView.DealTerms calldata deal,
        bytes32 jobSpecHash,
        bytes32 resultHash
    ) external {
        Request storage request = _inStatus(requestId, Status.Claimed);
        if (msg.sender != request.claimant) revert NotClaimant(msg.sender);
        if (block.timestamp > request.deadline) revert DeadlinePassed(request.deadline);
        bytes32 dealId = _checkDeal(request, requestId, deal, jobSpecHash);
        request.status = Status.Posted;
        request.postedAt = uint64(block.timestamp);
        request.payment = deal.payment;
        request.resultHash = resultHash;
        emit ResultPosted(requestId, msg.sender, dealId, resultHash, deal.payment);
    }

    /// @notice A consortium member's vote: the sha256 of the output tarball it got by running
    /// the request itself. Attested: on a posted result; optimistic: on a challenged one. The
    /// first hash with k votes rules: the posted one is upheld, any other overturns it.
    function vote(bytes32 requestId, address[] calldata mediators, bytes32 resultHash) external {
        Request storage request = requests[requestId];
        if (keccak256(abi.encode(mediators)) != request.consortiumHash) revert BadPolicy("set");
        if (!_contains(mediators, msg.sender)) revert NotConsortium(msg.sender);
        Status expected = request.mode == Mode.Attested ? Status.Posted : Status.Challenged;
        if (request.status != expected) revert WrongStatus(requestId, request.status);
        bytes32 key = keccak256(abi.encode(requestId, request.round));
        if (voted[key][msg.sender]) revert AlreadyVoted(msg.sender);
        voted[key][msg.sender] = true;
        uint256 count = ++votes[key][resultHash];
        emit Voted(requestId, msg.sender, request.round, resultHash);
        if (count == request.threshold) _rule(request, requestId, resultHash);
    }

    /// @notice Optimistic: dispute a posted result within its window, with a bond equal to the
    /// claimant's. The consortium's k votes decide who gets both.
    function challenge(bytes32 requestId) external payable {
        Request storage request = _inStatus(requestId, Status.Posted);
        if (request.mode != Mode.Optimistic) revert WrongMode(requestId);
        uint64 closes = request.postedAt + request.challengeWindow;
        if (block.timestamp > closes) revert WindowClosed(closes);
        if (msg.value != request.bond) revert WrongBond(msg.value, request.bond);
        request.status = Status.Challenged;
        request.challenger = msg.sender;
        request.postedAt = uint64(block.timestamp);
        emit Challenged(requestId, msg.sender, request.resultHash);
    }

    /// @notice Deliver a final result: the tarball whose sha256 is the posted hash; anyone may
    /// relay it, the claimant is paid. An empty `tarball` delivers the result's CID instead,
    /// which only the claimant may choose (outputs too large for calldata).
    function deliver(bytes32 requestId, bytes calldata tarball)
        external
        returns (bool callbackSucceeded)
    {
        Request storage request = requests[requestId];
        Status status = request.status;
        bool unchallenged = request.mode == Mode.Optimistic && status == Status.Posted
            && block.timestamp > request.postedAt + request.challengeWindow;
        if (!unchallenged && status != Status.Upheld) revert NotBacked(requestId);
        bytes32 resultHash = request.resultHash;
        bytes memory output;
        bool outputIsCid = tarball.length == 0;
        if (outputIsCid) {
            if (msg.sender != request.claimant) revert NotClaimant(msg.sender);
        } else {
            bytes32 delivered = sha256(tarball);
            if (delivered != resultHash) revert ResultMismatch(resultHash, delivered);
            bool fits;
            (output, fits) = _firstFile(tarball);
            outputIsCid = !fits;
        }
        if (outputIsCid) output = abi.encodePacked(CID_PREFIX, resultHash);

        uint256 payment = request.payment;
        request.status = Status.Delivered;
        owed[request.claimant] += payment + request.bond;
        if (request.escrow != payment) owed[request.requester] += request.escrow - payment;
        callbackSucceeded = _callBack(request.requester, request.callbackGasLimit,
            abi.encodeCall(ILilypadResultReceiver.onLilypadResult,
                (requestId, resultHash, output, outputIsCid)));
        emit ResultDelivered(
            requestId, request.claimant, resultHash, payment, outputIsCid, callbackSucceeded
        );
    }

    /// @notice End a request that can no longer be delivered (anyone may call): its escrow goes
    /// back to the requester. Open or claimed past the deadline: a claimant's bond goes to the
    /// requester. Final but not delivered within REVEAL_WINDOW after it could have been:
    /// likewise. Posted (attested) or challenged (optimistic) and left unruled by the consortium
    /// for RULING_WINDOW: the bonds go back to who put them up.
    function refund(bytes32 requestId) external {
        Request storage request = requests[requestId];
        Status status = request.status;
        uint256 bond = request.bond;
        uint256 forfeited;
        bool attested = request.mode == Mode.Attested;
        if (status == Status.Open) {
            _after(request.deadline);
        } else if (status == Status.Claimed) {
            _after(request.deadline);
            forfeited = bond;
        } else if (status == Status.Posted && attested) {
            _after(_later(request.deadline, request.postedAt + uint64(RULING_WINDOW)));
            owed[request.claimant] += bond;
        } else if (status == Status.Challenged) {
            _after(request.postedAt + uint64(RULING_WINDOW));
            owed[request.claimant] += bond;
            owed[request.challenger] += bond;
        } else if (status == Status.Posted || status == Status.Upheld) {
            uint64 finalAt =
                attested ? request.postedAt : request.postedAt + request.challengeWindow;
            _after(_later(request.deadline, finalAt) + uint64(REVEAL_WINDOW));
            forfeited = bond;
        } else {
            revert WrongStatus(requestId, status);
        }
        request.status = Status.Refunded;
        owed[request.requester] += request.escrow + forfeited;
        emit RequestRefunded(requestId, request.escrow, forfeited);
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

    /// @notice Wei this contract holds for the request (escrow plus bonds) until it ends.
    function held(bytes32 requestId) external view returns (uint256) {
        Request storage request = requests[requestId];
        Status status = request.status;
        if (status == Status.None || status == Status.Delivered || status == Status.Refunded) {
            return 0;
        }
        uint256 bonds = status == Status.Open ? 0 : status == Status.Challenged ? 2 : 1;
        return request.escrow + bonds * request.bond;
    }

    // ---------------------------------------------------------------- internals

    /// @dev The consortium's ruling on the posted result: k votes for `majorityHash`.
    function _rule(Request storage request, bytes32 requestId, bytes32 majorityHash) private {
        bytes32 posted = request.resultHash;
        uint256 bond = request.bond;
        address challenger = request.challenger;
        bool upheld = majorityHash == posted;
        if (upheld) {
            request.status = Status.Upheld;
            if (challenger != address(0)) owed[request.claimant] += bond;
        } else {
            // Overturned: a challenger gets its bond back and half the claimant's, the
            // requester the rest, and the request is open for another bridge.
            uint256 reward = challenger == address(0) ? 0 : bond / 2;
            if (challenger != address(0)) owed[challenger] += bond + reward;
            owed[request.requester] += bond - reward;
            request.status = Status.Open;
            request.claimant = address(0);
            request.resultHash = 0;
            request.payment = 0;
            request.round += 1;
        }
        request.challenger = address(0);
        emit Ruled(requestId, upheld, posted, majorityHash);
    }

    /// @dev The deal was made by the claimant for this request (Job salt = request id, the
    /// request's module), costs at most the escrow, and its provider has been paid.
    function _checkDeal(
        Request storage request,
        bytes32 requestId,
        ISettlementView.DealTerms calldata deal,
        bytes32 jobSpecHash
    ) private view returns (bytes32 dealId) {
        if (deal.jobCreator != request.claimant) revert NotClaimant(deal.jobCreator);
        bytes32 jobHash =
            keccak256(abi.encode(JOB_TYPEHASH, jobSpecHash, request.moduleHash, requestId));
        if (deal.jobHash != jobHash) revert WrongJob();
        if (deal.payment > request.escrow) revert PriceAboveEscrow(deal.payment, request.escrow);
        dealId = settlement.dealDigest(deal);
        (uint8 status,,,,, uint8 outcome) = settlement.deals(dealId);
        bool paid = status == STATUS_SETTLED || status == STATUS_TIMED_OUT_ACCEPTANCE
            || (status == STATUS_RESOLVED
                && (outcome == OUTCOME_PROVIDER_CORRECT || outcome == OUTCOME_NON_DETERMINISTIC));
        if (!paid) revert DealNotPaid(dealId, status, outcome);
    }

    function _checkPolicy(Policy calldata policy) private pure returns (bytes32) {
        uint256 n = policy.mediators.length;
        if (n == 0 || n > MAX_MEDIATORS) revert BadPolicy("1 to 16 mediators");
        if (policy.threshold == 0 || policy.threshold > n) revert BadPolicy("threshold");
        address previous = address(0);
        for (uint256 i = 0; i < n; ++i) {
            address mediator = policy.mediators[i];
            if (mediator <= previous) revert BadPolicy("mediators ascending and distinct");
            previous = mediator;
        }
        if (policy.mode == Mode.Optimistic) {
            if (policy.challengeWindow == 0 || policy.challengeWindow > MAX_CHALLENGE_WINDOW) {
                revert BadPolicy("challenge window");
            }
            if (policy.bond == 0) revert BadPolicy("optimistic requests need a bond");
        } else if (policy.challengeWindow != 0) {
            revert BadPolicy("attested requests have no challenge window");
        }
        return keccak256(abi.encode(policy.mediators));
    }

    function _inStatus(bytes32 requestId, Status expected)
        private
        view
        returns (Request storage request)
    {
        request = requests[requestId];
        if (request.status != expected) revert WrongStatus(requestId, request.status);
    }

    function _later(uint64 a, uint64 b) private pure returns (uint64) {
        return a > b ? a : b;
    }

    function _after(uint64 moment) private view {
        if (block.timestamp <= moment) revert TooEarly(moment);
    }

    function _contains(address[] calldata list, address needle) private pure returns (bool) {
        for (uint256 i = 0; i < list.length; ++i) {
            if (list[i] == needle) return true;
        }
        return false;
    }

    /// @dev The data of the tarball's first entry, which must be a regular file (ustar typeflag
    /// '0'), and whether it fits MAX_OUTPUT_BYTES (if not, the data is empty). The node's
    /// canonical tarball sorts entries by path, has no PAX header for short ASCII names, and pads
    /// to 10 KiB records.
    function _firstFile(bytes calldata tarball)
        private
        pure
        returns (bytes memory data, bool fits)
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
}
