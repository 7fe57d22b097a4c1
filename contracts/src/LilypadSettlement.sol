// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title lilypad-p2p settlement: accounts, mediator registry, deals, k-of-n mediation.
/// @notice Money is native ETH held in internal accounts (free + locked); the only outgoing
/// transfer is `withdraw`, after a notice period. A deal lives on chain as one storage slot keyed
/// by its EIP-712 digest (the dealId); every call passes the signed deal again as calldata and the
/// contract re-derives the dealId from it. Calldata carries the deal as `DealTerms`: the EIP-712
/// `Deal` with its `address[] mediators` replaced by their EIP-712 array hash, which is all the
/// struct hash needs; the few calls that need the members (`openDeal`, `resolve`,
/// `claimMediationFee`) take the array beside it and check it against that hash.
///
/// Deadlines: `resultDeadline` is absolute (unix seconds); `acceptanceWindow` counts from the
/// moment a result is recorded on chain (`submitResult`), `mediationWindow` from `dispute`. Thus
/// a job creator always has the full acceptance window, however late the provider posts.
contract LilypadSettlement {
    /// The signed EIP-712 `Deal`, its members already EIP-712-encoded: `mediators` (strictly
    /// ascending, at most MAX_MEDIATORS) as `keccak256` of the 32-byte-padded addresses, the
    /// nested `Job` struct as its hashStruct. Field order = EIP-712 encoding order.
    struct DealTerms {
        address jobCreator;
        address provider;
        uint128 payment;
        uint128 collateral;
        uint128 mediationFee;
        bytes32 mediatorsHash;
        uint8 threshold; // k of the n mediators must sign a verdict
        uint64 resultDeadline; // unix seconds
        uint64 acceptanceWindow; // seconds after the result is recorded on chain
        uint64 mediationWindow; // seconds after the dispute
        bytes32 jobHash; // hashStruct(Job(jobSpecHash, moduleHash, salt))
    }

    struct Account {
        uint128 free;
        uint128 locked;
    }

    struct WithdrawRequest {
        uint128 amount;
        uint64 readyAt;
    }

    struct Mediator {
        uint128 stake;
        uint64 exitReadyAt; // 0 while active
    }

    struct DealRecord {
        Status status;
        uint40 since; // when the current status began (result recorded, dispute opened)
        uint32 unpaidSigners; // resolved deals: bit i set = mediators[i] signed, fee unclaimed
        uint8 signerCount;
        // First 20 bytes of the provider's recorded result hash (the full hash is in the
        // ResultSubmitted event): fits the same slot, so recording a result costs no new slot.
        bytes20 resultPrefix;
        // Resolved deals: the verdict applied (its last free byte, so `resolve` writes no new
        // slot). With ProviderCorrect, resultPrefix is the hash the verdict upheld.
        Outcome outcome;
    }

    enum Status {
        None,
        Open,
        ResultSubmitted,
        Disputed,
        Settled, // accepted by the job creator
        TimedOutNoResult, // provider never posted a result: collateral to the job creator
        TimedOutAcceptance, // job creator silent after the result: provider paid
        TimedOutMediation, // mediators silent: price split, collateral and fee back
        Resolved // k-of-n verdict applied
    }

    enum Outcome {
        Invalid,
        ProviderCorrect,
        ProviderWrong,
        NonDeterministic
    }

    uint256 public constant MAX_MEDIATORS = 32;
    // Why settleBatch left a deal out (DealSkipped.reason).
    uint8 public constant SKIP_NOT_OPEN = 1; // no deal with these terms was opened
    uint8 public constant SKIP_FINAL = 2; // already settled, timed out or resolved
    uint8 public constant SKIP_BAD_SIGNATURE = 3; // not the job creator's Acceptance
    // Share of a slashed stake paid to whoever presented the equivocation; the rest is burned.
    uint256 public constant SLASH_REWARD_PERCENT = 50;
    // secp256k1n / 2: signatures with a larger s are the malleable twin of a low-s signature.
    uint256 private constant HALF_CURVE_ORDER =
        0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    bytes32 public constant DEAL_TYPEHASH = keccak256(
        "Deal(address jobCreator,address provider,uint128 payment,uint128 collateral,"
        "uint128 mediationFee,address[] mediators,uint8 threshold,uint64 resultDeadline,"
        "uint64 acceptanceWindow,uint64 mediationWindow,Job job)"
        "Job(bytes32 jobSpecHash,bytes32 moduleHash,bytes32 salt)"
    );
    bytes32 public constant ACCEPTANCE_TYPEHASH =
        keccak256("Acceptance(bytes32 dealId,bytes32 resultHash)");
    bytes32 public constant RESULT_COMMITMENT_TYPEHASH =
        keccak256("ResultCommitment(bytes32 dealId,bytes32 resultHash)");
    bytes32 public constant VERDICT_TYPEHASH =
        keccak256("Verdict(bytes32 dealId,uint8 outcome,bytes32 resultHash)");
    bytes32 private constant DOMAIN_TYPEHASH = keccak256(
        "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    );
    bytes32 private constant NAME_HASH = keccak256("LilypadSettlement");
    bytes32 private constant VERSION_HASH = keccak256("1");

    uint256 public immutable withdrawNotice;
    uint256 public immutable minMediatorStake;
    uint256 private immutable cachedChainId;
    bytes32 private immutable cachedDomainSeparator;

    mapping(address => Account) public accounts;
    mapping(address => WithdrawRequest) public withdrawRequests;
    mapping(address => Mediator) public mediators;
    mapping(bytes32 => DealRecord) public deals;
    // Slashed stake no account owns (never withdrawable): kept so the books still balance.
    uint256 public burned;
    // Guards the only external call (withdraw); transient, so it costs no storage.
    bool private transient withdrawing;

    event Deposited(address indexed account, uint256 amount);
    event WithdrawRequested(address indexed account, uint256 amount, uint256 readyAt);
    event Withdrawn(address indexed account, uint256 amount);
    event MediatorRegistered(address indexed mediator, uint256 stake);
    event MediatorExitRequested(address indexed mediator, uint256 readyAt);
    event MediatorExited(address indexed mediator, uint256 stake);
    event DealOpened(bytes32 indexed dealId, address indexed jobCreator, address indexed provider);
    event ResultSubmitted(bytes32 indexed dealId, bytes32 resultHash);
    event DealSettled(bytes32 indexed dealId, bytes32 resultHash);
    event DealDisputed(bytes32 indexed dealId);
    /// `fee` is the whole mediation fee, now held for the verdict's signers (see
    /// `claimMediationFee`).
    event DealResolved(
        bytes32 indexed dealId,
        Outcome outcome,
        bytes32 resultHash,
        uint256 signerMask,
        uint256 fee
    );
    event DealTimedOut(bytes32 indexed dealId, Status status);
    event MediationFeeClaimed(bytes32 indexed dealId, address indexed mediator, uint256 amount);
    /// A deal `settleBatch` left out, and why (SKIP_* codes).
    event DealSkipped(bytes32 indexed dealId, uint8 reason);
    event FeePaid(address indexed payer, address indexed payee, uint256 amount);
    event VerdictSignatureAdded(bytes32 indexed dealId, address indexed mediator);
    event MediatorSlashed(
        address indexed mediator,
        address indexed presenter,
        bytes32 indexed dealId,
        uint256 reward,
        uint256 burned
    );

    error ZeroAmount();
    error AmountOverflow();
    error InsufficientFunds(address account, uint256 available, uint256 needed);
    error NoWithdrawRequest();
    error WithdrawNotReady(uint256 readyAt);
    error TransferFailed();
    error Reentrancy();
    error StakeTooLow(uint256 stake, uint256 minimum);
    error NotMediator(address account);
    error MediatorExiting(uint256 readyAt);
    error InvalidDeal(string reason);
    error DealExpired(uint256 resultDeadline);
    error DealAlreadyOpened(bytes32 dealId);
    error DealNotOpen(bytes32 dealId);
    error AlreadySettled(bytes32 dealId, Status status);
    error WrongStatus(bytes32 dealId, Status status);
    error BadSignature();
    error MalleableSignature();
    error WrongSigner(address expected, address recovered);
    error TooEarly(uint256 availableAt);
    error TooLate(uint256 deadline);
    error NotJobCreator(address caller);
    error NotEnoughSignatures(uint256 given, uint256 needed);
    error SignersNotAscending();
    error NotInConsortium(address signer);
    error UnregisteredMediator(address signer);
    error VerdictInconsistent(Outcome outcome, bytes32 resultHash);
    error NoFeeOwed(bytes32 dealId, address mediator);
    error AlreadySigned(bytes32 dealId, address mediator);
    error NotEquivocation();

    constructor(uint256 withdrawNotice_, uint256 minMediatorStake_) {
        withdrawNotice = withdrawNotice_;
        minMediatorStake = minMediatorStake_;
        cachedChainId = block.chainid;
        cachedDomainSeparator = _buildDomainSeparator();
    }

    // ---------------------------------------------------------------- accounts

    function deposit() external payable {
        if (msg.value == 0) revert ZeroAmount();
        accounts[msg.sender].free += _toUint128(msg.value);
        emit Deposited(msg.sender, msg.value);
    }

    /// @notice Announce a withdrawal (paid to `payoutOf(msg.sender)`). The funds stay free (and lockable by deals) during the
    /// notice, so a counterparty that checked this balance before signing a deal can still rely
    /// on it; `withdraw` later takes at most what is still free.
    /// An amount above what could ever be held (e.g. type(uint256).max) means "all of it".
    /// A request for no more than the pending one changes nothing, so whoever else holds the
    /// key cannot shrink the owner's request or restart its notice (see `setPayoutAddress`).
    function requestWithdraw(uint256 amount) external {
        _requestWithdraw(msg.sender, amount);
    }

    function withdraw() external {
        _withdraw(msg.sender);
    }

    function _requestWithdraw(address who, uint256 amount) private {
        if (amount == 0) revert ZeroAmount();
        if (amount > type(uint128).max) amount = type(uint128).max;
        if (amount <= withdrawRequests[who].amount) return;
        uint256 readyAt = block.timestamp + withdrawNotice;
        withdrawRequests[who] = WithdrawRequest(uint128(amount), _toUint64(readyAt));
        emit WithdrawRequested(who, amount, readyAt);
    }

    function _withdraw(address who) private {
        _enterGuard();
        WithdrawRequest memory request = withdrawRequests[who];
        if (request.amount == 0) revert NoWithdrawRequest();
        if (block.timestamp < request.readyAt) revert WithdrawNotReady(request.readyAt);
        if (successorOf[who] != address(0)) revert AlreadyRotated(successorOf[who]);
        Account storage account = accounts[who];
        uint128 amount = request.amount < account.free ? request.amount : account.free;
        delete withdrawRequests[who];
        account.free -= amount;
        emit Withdrawn(who, amount);
        (bool ok,) = payoutOf(who).call{value: amount}("");
        if (!ok) revert TransferFailed();
        _exitGuard();
    }

    // ---------------------------------------------------------------- payout address, rotation
    // The node key is hot (it sits on the node's disk and signs deals). An account may name a
    // payout address, ideally a cold wallet: `withdraw` pays only to it, so the free balance (a
    // mediator's exited stake included) is safe from a thief holding only the hot key. The first
    // payout address takes effect at once (before it, the hot key could withdraw to itself
    // anyway); a change takes `payoutChangeDelay()`, twice the withdrawal notice, so an owner who
    // sees the announcement in its first half can still withdraw to the old address, and the
    // current payout address (not the hot key) can cancel it outright.
    // A key rotation moves the free balance and the payout record to a new key; it needs nothing
    // locked under the old key (a per-account open-deal counter would cost the deal calls gas),
    // and anything credited to the old address later is swept to its successor by anyone.

    struct PayoutChange {
        address next;
        uint64 readyAt;
    }

    bytes32 public constant KEY_ROTATION_TYPEHASH =
        keccak256("KeyRotation(address from,address to)");

    mapping(address => address) public payoutAddress;
    mapping(address => PayoutChange) public payoutChanges;
    mapping(address => address) public successorOf;

    event PayoutAddressSet(address indexed account, address indexed payout);
    event PayoutChangeAnnounced(address indexed account, address indexed next, uint256 readyAt);
    event PayoutChangeCancelled(address indexed account, address indexed next);
    event KeyRotated(address indexed account, address indexed successor, uint256 free);
    event RotatedBalanceSwept(
        address indexed account, address indexed successor, uint256 amount
    );

    error ZeroAddress();
    error NotPayoutAddress(address caller, address payout);
    error NoPayoutChange();
    error AlreadyRotated(address successor);
    error NotRotated(address account);
    error FundsLocked(uint256 locked);
    error RotationTargetInUse(address to);
    error StillMediator(address account);

    function payoutChangeDelay() public view returns (uint256) {
        return 2 * withdrawNotice;
    }

    /// @notice Where `account`'s withdrawals go: its payout address (a due change applied), or
    /// the account itself when it never named one.
    function payoutOf(address account) public view returns (address) {
        PayoutChange memory change = payoutChanges[account];
        if (change.readyAt != 0 && block.timestamp >= change.readyAt) return change.next;
        address payout = payoutAddress[account];
        return payout == address(0) ? account : payout;
    }

    /// @notice Name the payout address: at once if none is set, else announced and due after
    /// `payoutChangeDelay()` (a new announcement replaces a pending one and restarts the delay).
    function setPayoutAddress(address payout) external {
        if (payout == address(0)) revert ZeroAddress();
        _applyDuePayoutChange(msg.sender);
        if (payoutAddress[msg.sender] == address(0)) {
            payoutAddress[msg.sender] = payout;
            emit PayoutAddressSet(msg.sender, payout);
            return;
        }
        uint256 readyAt = block.timestamp + payoutChangeDelay();
        payoutChanges[msg.sender] = PayoutChange(payout, uint64(readyAt));
        emit PayoutChangeAnnounced(msg.sender, payout, readyAt);
    }

    /// @notice The current payout address (only it: the hot key cannot) cancels a pending
    /// change of `account`'s payout address.
    function cancelPayoutChange(address account) external {
        _applyDuePayoutChange(account);
        PayoutChange memory change = payoutChanges[account];
        if (change.readyAt == 0) revert NoPayoutChange();
        address payout = payoutAddress[account];
        if (msg.sender != payout) revert NotPayoutAddress(msg.sender, payout);
        delete payoutChanges[account];
        emit PayoutChangeCancelled(account, change.next);
    }

    /// @notice The payout address announces and completes `account`'s withdrawals (paid to
    /// itself) as the hot key can: the owner's cold key alone can empty an account whose hot key
    /// was stolen, even after a thief rotated it away.
    function requestWithdrawFor(address account, uint256 amount) external {
        _requirePayoutAddress(account);
        _requestWithdraw(account, amount);
    }

    function withdrawFor(address account) external {
        _requirePayoutAddress(account);
        _withdraw(account);
    }

    /// @notice Move this account to the key `to`, which consents by signing the EIP-712
    /// `KeyRotation(from, to)`: its free balance, payout address and any pending payout change
    /// go to `to`; a pending withdrawal request is dropped. Needs nothing locked in deals and no
    /// mediator registration (exit first: the stake then moves as free balance). The old key
    /// can no longer withdraw; later credits to it are swept to `to` by `sweepRotated`.
    function rotateKey(address to, bytes calldata sigTo) external {
        address from = msg.sender;
        if (to == address(0)) revert ZeroAddress();
        if (successorOf[from] != address(0)) revert AlreadyRotated(successorOf[from]);
        Account memory account = accounts[from];
        if (account.locked != 0) revert FundsLocked(account.locked);
        if (mediators[from].stake != 0) revert StillMediator(from);
        if (
            to == from || successorOf[to] != address(0) || accounts[to].free != 0
                || accounts[to].locked != 0 || payoutAddress[to] != address(0)
                || payoutChanges[to].readyAt != 0 || mediators[to].stake != 0
        ) revert RotationTargetInUse(to);
        _requireSigner(
            _typedDigest(keccak256(abi.encode(KEY_ROTATION_TYPEHASH, from, to))), sigTo, to
        );
        successorOf[from] = to;
        accounts[to].free = account.free;
        delete accounts[from];
        delete withdrawRequests[from];
        payoutAddress[to] = payoutAddress[from];
        payoutChanges[to] = payoutChanges[from];
        delete payoutChanges[from];
        emit KeyRotated(from, to, account.free);
    }

    /// @notice Move what was credited to a rotated-away address since (a fee claim, a deal
    /// that locked nothing of it) to its successor. Anyone may call it.
    function sweepRotated(address from) external {
        address to = successorOf[from];
        if (to == address(0)) revert NotRotated(from);
        Account memory account = accounts[from];
        if (account.locked != 0) revert FundsLocked(account.locked);
        if (account.free == 0) revert ZeroAmount();
        accounts[from].free = 0;
        _storeAccount(to, uint256(accounts[to].free) + account.free, accounts[to].locked);
        emit RotatedBalanceSwept(from, to, account.free);
    }

    function _requirePayoutAddress(address account) private {
        _applyDuePayoutChange(account);
        address payout = payoutAddress[account];
        if (msg.sender != payout || payout == address(0)) {
            revert NotPayoutAddress(msg.sender, payout);
        }
    }

    function _applyDuePayoutChange(address account) private {
        PayoutChange memory change = payoutChanges[account];
        if (change.readyAt == 0 || block.timestamp < change.readyAt) return;
        payoutAddress[account] = change.next;
        delete payoutChanges[account];
        emit PayoutAddressSet(account, change.next);
    }

    // ---------------------------------------------------------------- mediators

    function registerMediator() external payable {
        Mediator storage mediator = mediators[msg.sender];
        if (mediator.exitReadyAt != 0) revert MediatorExiting(mediator.exitReadyAt);
        uint256 stake = mediator.stake + msg.value;
        if (stake < minMediatorStake || stake == 0) revert StakeTooLow(stake, minMediatorStake);
        mediator.stake = _toUint128(stake);
        emit MediatorRegistered(msg.sender, stake);
    }

    /// @notice Stop counting as registered now; the stake returns to the free balance after
    /// the withdrawal notice.
    function requestMediatorExit() external {
        Mediator storage mediator = mediators[msg.sender];
        if (mediator.stake == 0) revert NotMediator(msg.sender);
        if (mediator.exitReadyAt != 0) revert MediatorExiting(mediator.exitReadyAt);
        uint256 readyAt = block.timestamp + withdrawNotice;
        mediator.exitReadyAt = _toUint64(readyAt);
        emit MediatorExitRequested(msg.sender, readyAt);
    }

    function completeMediatorExit() external {
        Mediator memory mediator = mediators[msg.sender];
        if (mediator.exitReadyAt == 0) revert NotMediator(msg.sender);
        if (block.timestamp < mediator.exitReadyAt) revert TooEarly(mediator.exitReadyAt);
        delete mediators[msg.sender];
        accounts[msg.sender].free += mediator.stake;
        emit MediatorExited(msg.sender, mediator.stake);
    }

    function isRegisteredMediator(address account) public view returns (bool) {
        Mediator memory mediator = mediators[account];
        return mediator.exitReadyAt == 0 && mediator.stake >= minMediatorStake
            && mediator.stake != 0;
    }

    // ---------------------------------------------------------------- deals

    function openDeal(
        DealTerms calldata deal,
        address[] calldata consortium,
        bytes calldata sigJobCreator,
        bytes calldata sigProvider
    ) external returns (bytes32 dealId) {
        _checkDealShape(deal, consortium);
        if (block.timestamp >= deal.resultDeadline) revert DealExpired(deal.resultDeadline);
        dealId = dealDigest(deal);
        DealRecord storage record = deals[dealId];
        if (record.status != Status.None) revert DealAlreadyOpened(dealId);
        _requireSigner(dealId, sigJobCreator, deal.jobCreator);
        _requireSigner(dealId, sigProvider, deal.provider);

        _lock(deal.jobCreator, uint256(deal.payment) + deal.mediationFee);
        _lock(deal.provider, deal.collateral);
        record.status = Status.Open;
        record.since = uint40(block.timestamp);
        emit DealOpened(dealId, deal.jobCreator, deal.provider);
    }

    /// @notice Record the provider's signed ResultCommitment (anyone may post it: it carries the
    /// provider's signature). Starts the acceptance window.
    function submitResult(DealTerms calldata deal, bytes32 resultHash, bytes calldata sigProvider)
        external
    {
        bytes32 dealId = dealDigest(deal);
        DealRecord storage record = deals[dealId];
        _requireStatus(dealId, record.status, Status.Open);
        if (block.timestamp > deal.resultDeadline) revert TooLate(deal.resultDeadline);
        bytes32 digest =
            _typedDigest(keccak256(abi.encode(RESULT_COMMITMENT_TYPEHASH, dealId, resultHash)));
        _requireSigner(digest, sigProvider, deal.provider);
        record.status = Status.ResultSubmitted;
        record.since = uint40(block.timestamp);
        record.resultPrefix = bytes20(resultHash);
        emit ResultSubmitted(dealId, resultHash);
    }

    /// @notice Happy path: the job creator's signed Acceptance pays the provider, returns the
    /// collateral and refunds the unused mediation fee. Anyone may submit it, also after the job
    /// creator disputed the deal: an Acceptance once signed cannot be taken back by a dispute.
    function settle(DealTerms calldata deal, bytes32 resultHash, bytes calldata sigJobCreator)
        external
    {
        _settleOne(deal, dealDigest(deal), resultHash, sigJobCreator);
        _payOut(deal.jobCreator, uint256(deal.payment) + deal.mediationFee, deal.mediationFee);
        _payOut(deal.provider, deal.collateral, uint256(deal.payment) + deal.collateral);
    }

    /// @notice Settle many accepted deals. A deal that cannot be settled (never opened, already
    /// final, or without the job creator's Acceptance) is left out with a `DealSkipped` event
    /// naming it and the reason, so no deal in a batch can make the others fail. Consecutive
    /// deals of the same provider share one balance write.
    function settleBatch(
        DealTerms[] calldata batch,
        bytes32[] calldata resultHashes,
        bytes[] calldata sigsJobCreator
    ) external returns (uint256 settled) {
        if (batch.length != resultHashes.length || batch.length != sigsJobCreator.length) {
            revert InvalidDeal("batch lengths differ");
        }
        address provider;
        uint256 providerUnlock;
        uint256 providerCredit;
        for (uint256 i; i < batch.length; ++i) {
            DealTerms calldata deal = batch[i];
            bytes32 dealId = dealDigest(deal);
            uint8 skip = _trySettle(deal, dealId, resultHashes[i], sigsJobCreator[i]);
            if (skip != 0) {
                emit DealSkipped(dealId, skip);
                continue;
            }
            _payOut(deal.jobCreator, uint256(deal.payment) + deal.mediationFee, deal.mediationFee);
            if (deal.provider != provider) {
                if (provider != address(0)) _payOut(provider, providerUnlock, providerCredit);
                provider = deal.provider;
                providerUnlock = 0;
                providerCredit = 0;
            }
            providerUnlock += deal.collateral;
            providerCredit += uint256(deal.payment) + deal.collateral;
            ++settled;
        }
        if (provider != address(0)) _payOut(provider, providerUnlock, providerCredit);
    }

    /// @notice The job creator rejects the recorded result; the consortium now decides.
    function dispute(DealTerms calldata deal) external {
        bytes32 dealId = dealDigest(deal);
        DealRecord storage record = deals[dealId];
        if (msg.sender != deal.jobCreator) revert NotJobCreator(msg.sender);
        _requireStatus(dealId, record.status, Status.ResultSubmitted);
        uint256 deadline = uint256(record.since) + deal.acceptanceWindow;
        if (block.timestamp > deadline) revert TooLate(deadline);
        record.status = Status.Disputed;
        record.since = uint40(block.timestamp);
        emit DealDisputed(dealId);
    }

    /// @notice Apply a verdict signed by at least `threshold` of the deal's mediators.
    /// `signatures` is 65-byte (r, s, v) signatures concatenated, signers strictly ascending.
    /// `resultHash` is the hash the mediators computed: it must match the provider's recorded
    /// result (first 20 bytes) for ProviderCorrect and differ for ProviderWrong. Only inside the
    /// mediation window (after it, `claimTimeout` applies). The whole mediation fee is held for
    /// the signers: members left out may add their agreeing signature for one more mediation
    /// window (`addVerdictSignature`), after which `claimMediationFee` splits the fee equally
    /// among all of them, so whoever submits cannot cut the others out.
    function resolve(
        DealTerms calldata deal,
        address[] calldata consortium,
        Outcome outcome,
        bytes32 resultHash,
        bytes calldata signatures
    ) external {
        bytes32 dealId = dealDigest(deal);
        DealRecord storage record = deals[dealId];
        DealRecord memory current = record;
        _requireStatus(dealId, current.status, Status.Disputed);
        uint256 deadline = uint256(current.since) + deal.mediationWindow;
        if (block.timestamp > deadline) revert TooLate(deadline);
        _requireConsistent(outcome, resultHash, current.resultPrefix);
        _requireConsortium(deal, consortium);

        (uint256 signerMask, uint256 count) = _checkVerdictSignatures(
            deal.threshold, consortium, _verdictDigest(dealId, outcome, resultHash), signatures
        );

        record.status = Status.Resolved;
        record.since = uint40(block.timestamp);
        record.unpaidSigners = uint32(signerMask);
        record.signerCount = uint8(count);
        record.outcome = outcome;

        uint256 jcLocked = uint256(deal.payment) + deal.mediationFee;
        if (outcome == Outcome.ProviderWrong) {
            _payOut(deal.jobCreator, jcLocked, uint256(deal.payment) + deal.collateral);
            _payOut(deal.provider, deal.collateral, 0);
        } else {
            _payOut(deal.jobCreator, jcLocked, 0);
            _payOut(deal.provider, deal.collateral, uint256(deal.payment) + deal.collateral);
        }
        emit DealResolved(dealId, outcome, resultHash, signerMask, deal.mediationFee);
    }

    /// @notice A consortium member the resolver left out adds its signature over the applied
    /// verdict (same outcome; for ProviderCorrect the provider's hash, otherwise any hash that
    /// differs from it or a NonDeterministic one), within one mediation window after `resolve`.
    /// It then shares the fee like the original signers. Anyone may submit it.
    function addVerdictSignature(
        DealTerms calldata deal,
        address[] calldata consortium,
        bytes32 resultHash,
        bytes calldata signature
    ) external {
        bytes32 dealId = dealDigest(deal);
        DealRecord storage record = deals[dealId];
        DealRecord memory current = record;
        _requireStatus(dealId, current.status, Status.Resolved);
        uint256 deadline = uint256(current.since) + deal.mediationWindow;
        if (block.timestamp > deadline) revert TooLate(deadline);
        _requireConsistent(current.outcome, resultHash, current.resultPrefix);
        _requireConsortium(deal, consortium);
        if (signature.length != 65) revert BadSignature();
        (uint256 signerMask,) = _checkVerdictSignatures(
            1, consortium, _verdictDigest(dealId, current.outcome, resultHash), signature
        );
        if (current.unpaidSigners & signerMask != 0) {
            revert AlreadySigned(dealId, consortium[_lowestBit(signerMask)]);
        }
        record.unpaidSigners = current.unpaidSigners | uint32(signerMask);
        record.signerCount = current.signerCount + 1;
        emit VerdictSignatureAdded(dealId, consortium[_lowestBit(signerMask)]);
    }

    /// @notice Once the window for late signatures has closed, credit every signer of the
    /// applied verdict its equal share of the mediation fee (the division's remainder to the
    /// lowest-indexed signer). One transaction pays them all; anyone may send it.
    function claimMediationFee(DealTerms calldata deal, address[] calldata consortium) external {
        _requireConsortium(deal, consortium);
        bytes32 dealId = dealDigest(deal);
        DealRecord storage record = deals[dealId];
        DealRecord memory current = record;
        if (current.status != Status.Resolved || current.unpaidSigners == 0) {
            revert NoFeeOwed(dealId, msg.sender);
        }
        uint256 opensAt = uint256(current.since) + deal.mediationWindow + 1;
        if (block.timestamp < opensAt) revert TooEarly(opensAt);
        record.unpaidSigners = 0;
        uint256 fee = deal.mediationFee;
        uint256 share = fee / current.signerCount;
        uint256 extra = fee - share * current.signerCount;
        for (uint256 i; i < consortium.length; ++i) {
            if (current.unpaidSigners & (1 << i) == 0) continue;
            address mediator = consortium[i];
            Account memory account = accounts[mediator];
            _storeAccount(mediator, account.free + share + extra, account.locked);
            emit MediationFeeClaimed(dealId, mediator, share + extra);
            extra = 0;
        }
    }

    /// @notice Pay mediators for spot checks that agreed off chain: `amounts[i]` of the caller's
    /// free balance to `to[i]`'s free balance, many deals' fees in one transaction (a job
    /// creator sums what it owes each mediator and pays in batches), so an agreeing check adds
    /// no transaction to its deal.
    function payFees(address[] calldata to, uint256[] calldata amounts) external {
        if (to.length != amounts.length) revert InvalidDeal("lengths differ");
        uint256 total;
        for (uint256 i; i < to.length; ++i) {
            address payee = to[i];
            Account memory account = accounts[payee];
            _storeAccount(payee, account.free + amounts[i], account.locked);
            total += amounts[i];
            emit FeePaid(msg.sender, payee, amounts[i]);
        }
        Account memory payer = accounts[msg.sender];
        if (payer.free < total) revert InsufficientFunds(msg.sender, payer.free, total);
        _storeAccount(msg.sender, payer.free - total, payer.locked);
    }

    /// @notice Two verdicts for one deal that differ, both signed by the same mediator, prove it
    /// equivocated: its whole stake is taken, SLASH_REWARD_PERCENT of it to whoever presents
    /// the proof, the rest burned. Works for any dealId and at any time while the mediator
    /// still holds stake (also during its exit notice).
    function slashEquivocation(
        bytes32 dealId,
        Outcome outcomeA,
        bytes32 resultHashA,
        bytes calldata signatureA,
        Outcome outcomeB,
        bytes32 resultHashB,
        bytes calldata signatureB
    ) external {
        if (outcomeA == outcomeB && resultHashA == resultHashB) revert NotEquivocation();
        address signer = _recover(_verdictDigest(dealId, outcomeA, resultHashA), signatureA);
        address other = _recover(_verdictDigest(dealId, outcomeB, resultHashB), signatureB);
        if (signer != other) revert NotEquivocation();
        Mediator storage mediator = mediators[signer];
        uint256 stake = mediator.stake;
        if (stake == 0) revert NotMediator(signer);
        mediator.stake = 0;
        uint256 reward = stake * SLASH_REWARD_PERCENT / 100;
        burned += stake - reward;
        Account memory account = accounts[msg.sender];
        _storeAccount(msg.sender, account.free + reward, account.locked);
        emit MediatorSlashed(signer, msg.sender, dealId, reward, stake - reward);
    }

    /// @notice After a deadline passes, anyone may apply its consequence:
    /// Open past `resultDeadline` -> no result: payment and fee back to the job creator, the
    ///   provider's collateral to the job creator;
    /// ResultSubmitted past the acceptance window -> job creator silent: provider paid, fee back;
    /// Disputed past the mediation window -> mediators silent: the price is split between the
    ///   parties (provider payment / 2, rounded down), the collateral and the fee go back.
    function claimTimeout(DealTerms calldata deal) external {
        bytes32 dealId = dealDigest(deal);
        DealRecord storage record = deals[dealId];
        Status status = record.status;
        uint256 jcLocked = uint256(deal.payment) + deal.mediationFee;
        Status next;
        if (status == Status.Open) {
            if (block.timestamp <= deal.resultDeadline) revert TooEarly(deal.resultDeadline + 1);
            next = Status.TimedOutNoResult;
            _payOut(deal.jobCreator, jcLocked, jcLocked + deal.collateral);
            _payOut(deal.provider, deal.collateral, 0);
        } else if (status == Status.ResultSubmitted) {
            uint256 deadline = uint256(record.since) + deal.acceptanceWindow;
            if (block.timestamp <= deadline) revert TooEarly(deadline + 1);
            next = Status.TimedOutAcceptance;
            _payOut(deal.jobCreator, jcLocked, deal.mediationFee);
            _payOut(deal.provider, deal.collateral, uint256(deal.payment) + deal.collateral);
        } else if (status == Status.Disputed) {
            uint256 deadline = uint256(record.since) + deal.mediationWindow;
            if (block.timestamp <= deadline) revert TooEarly(deadline + 1);
            next = Status.TimedOutMediation;
            // Neither side's claim was ruled on: the price is split (the provider's half
            // rounded down), the collateral and the unused fee go back. A job creator holding
            // the output cannot get it free by disputing, nor a provider that withheld it get
            // paid in full; whichever side could silence the consortium gains half at most.
            uint256 providerShare = deal.payment / 2;
            _payOut(deal.jobCreator, jcLocked, jcLocked - providerShare);
            _payOut(deal.provider, deal.collateral, deal.collateral + providerShare);
        } else {
            _requireStatus(dealId, status, Status.Open);
        }
        record.status = next;
        record.since = uint40(block.timestamp);
        emit DealTimedOut(dealId, next);
    }

    // ---------------------------------------------------------------- views

    function domainSeparator() public view returns (bytes32) {
        return block.chainid == cachedChainId ? cachedDomainSeparator : _buildDomainSeparator();
    }

    /// @notice The dealId: the EIP-712 digest of the Deal under this contract's domain, i.e. the
    /// exact hash both parties sign. Unique per chain and contract.
    function dealDigest(DealTerms calldata deal) public view returns (bytes32) {
        // A static calldata struct is its 11 fields, each one 32-byte word, in order: exactly
        // EIP-712's encodeData for Deal (the mediators array already hashed). The words are
        // hashed as sent, unvalidated: a non-canonical word (dirty high bits) only yields a
        // digest nobody signed, and every field the contract uses is validated when read.
        bytes32 typeHash = DEAL_TYPEHASH;
        bytes32 structHash;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, typeHash)
            calldatacopy(add(ptr, 0x20), deal, 0x160)
            structHash := keccak256(ptr, 0x180)
        }
        return _typedDigest(structHash);
    }

    /// @notice EIP-712 hash of a mediator array (keccak256 of the 32-byte-padded addresses).
    function mediatorsHash(address[] calldata consortium) public pure returns (bytes32 hash) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            let size := mul(consortium.length, 0x20)
            calldatacopy(ptr, consortium.offset, size)
            hash := keccak256(ptr, size)
        }
    }

    // ---------------------------------------------------------------- internals

    function _settleOne(
        DealTerms calldata deal,
        bytes32 dealId,
        bytes32 resultHash,
        bytes calldata sigJobCreator
    ) private {
        DealRecord storage record = deals[dealId];
        Status status = record.status;
        // Open, ResultSubmitted or Disputed: an Acceptance outranks the job creator's dispute.
        if (status == Status.None || status >= Status.Settled) {
            _requireStatus(dealId, status, Status.Open);
        }
        _requireSigner(_acceptanceDigest(dealId, resultHash), sigJobCreator, deal.jobCreator);
        record.status = Status.Settled;
        record.since = uint40(block.timestamp);
        emit DealSettled(dealId, resultHash);
    }

    /// @dev `_settleOne` that reports (SKIP_*) instead of reverting; 0 = settled.
    function _trySettle(
        DealTerms calldata deal,
        bytes32 dealId,
        bytes32 resultHash,
        bytes calldata sigJobCreator
    ) private returns (uint8 skip) {
        DealRecord storage record = deals[dealId];
        Status status = record.status;
        if (status == Status.None) return SKIP_NOT_OPEN;
        if (status >= Status.Settled) return SKIP_FINAL;
        if (_tryRecover(_acceptanceDigest(dealId, resultHash), sigJobCreator) != deal.jobCreator) {
            return SKIP_BAD_SIGNATURE;
        }
        record.status = Status.Settled;
        record.since = uint40(block.timestamp);
        emit DealSettled(dealId, resultHash);
        return 0;
    }

    function _acceptanceDigest(bytes32 dealId, bytes32 resultHash) private view returns (bytes32) {
        return _typedDigest(keccak256(abi.encode(ACCEPTANCE_TYPEHASH, dealId, resultHash)));
    }

    function _verdictDigest(bytes32 dealId, Outcome outcome, bytes32 resultHash)
        private
        view
        returns (bytes32)
    {
        return _typedDigest(keccak256(abi.encode(VERDICT_TYPEHASH, dealId, outcome, resultHash)));
    }

    /// @dev A verdict must fit the provider's recorded result: ProviderCorrect upholds it (same
    /// hash), ProviderWrong names another, NonDeterministic either.
    function _requireConsistent(Outcome outcome, bytes32 resultHash, bytes20 resultPrefix)
        private
        pure
    {
        bool matches = bytes20(resultHash) == resultPrefix;
        if (
            outcome == Outcome.Invalid || (outcome == Outcome.ProviderCorrect && !matches)
                || (outcome == Outcome.ProviderWrong && matches)
        ) revert VerdictInconsistent(outcome, resultHash);
    }

    function _lowestBit(uint256 mask) private pure returns (uint256 index) {
        while (mask & 1 == 0) {
            mask >>= 1;
            ++index;
        }
    }

    function _requireConsortium(DealTerms calldata deal, address[] calldata consortium)
        private
        pure
    {
        if (mediatorsHash(consortium) != deal.mediatorsHash) revert InvalidDeal("mediators");
    }

    function _checkDealShape(DealTerms calldata deal, address[] calldata consortium)
        private
        pure
    {
        _requireConsortium(deal, consortium);
        uint256 n = consortium.length;
        if (n == 0 || n > MAX_MEDIATORS) revert InvalidDeal("mediator count");
        if (deal.threshold == 0 || deal.threshold > n) revert InvalidDeal("threshold");
        if (deal.jobCreator == address(0) || deal.provider == address(0)) {
            revert InvalidDeal("zero party");
        }
        address previous;
        for (uint256 i; i < n; ++i) {
            address mediator = consortium[i];
            if (mediator <= previous) revert InvalidDeal("mediators not ascending");
            if (mediator == deal.jobCreator || mediator == deal.provider) {
                revert InvalidDeal("party is a mediator");
            }
            previous = mediator;
        }
    }

    /// @dev One pass over the packed signatures: recover each, require strictly ascending
    /// signers (no duplicates), membership by a forward walk over the ascending consortium, and
    /// a registered stake. Written in assembly because this loop is what every extra mediator
    /// signature costs (the Solidity version spent ~1.3k gas per signature on call overhead).
    function _checkVerdictSignatures(
        uint256 threshold,
        address[] calldata consortium,
        bytes32 digest,
        bytes calldata signatures
    ) private view returns (uint256 signerMask, uint256 count) {
        if (signatures.length % 65 != 0) revert BadSignature();
        count = signatures.length / 65;
        if (count < threshold) revert NotEnoughSignatures(count, threshold);
        uint256 minStake = minMediatorStake;
        uint256 half = HALF_CURVE_ORDER;
        uint256 failure;
        address culprit;
        assembly ("memory-safe") {
            let ptr := mload(0x40) // ecrecover input, not claimed: nothing else allocates here
            mstore(ptr, digest)
            let n := consortium.length
            let cursor := 0
            let previous := 0
            let sig := signatures.offset
            for { let end := add(sig, mul(count, 65)) } lt(sig, end) { sig := add(sig, 65) } {
                let r := calldataload(sig)
                let s := calldataload(add(sig, 0x20))
                let v := byte(0, calldataload(add(sig, 0x40)))
                if gt(s, half) {
                    failure := 1
                    break
                }
                mstore(add(ptr, 0x20), v)
                mstore(add(ptr, 0x40), r)
                mstore(add(ptr, 0x60), s)
                mstore(0x00, 0)
                pop(staticcall(gas(), 0x01, ptr, 0x80, 0x00, 0x20))
                let signer := mload(0x00)
                if or(iszero(signer), iszero(or(eq(v, 27), eq(v, 28)))) {
                    failure := 2
                    break
                }
                if iszero(gt(signer, previous)) {
                    failure := 3
                    break
                }
                for {} and(lt(cursor, n), lt(calldataload(add(consortium.offset, shl(5, cursor))), signer)) {} {
                    cursor := add(cursor, 1)
                }
                if or(eq(cursor, n), iszero(eq(calldataload(add(consortium.offset, shl(5, cursor))), signer))) {
                    failure := 4
                    culprit := signer
                    break
                }
                // mediators[signer]: stake in the low 128 bits, exitReadyAt in the next 64
                mstore(0x00, signer)
                mstore(0x20, mediators.slot)
                let word := sload(keccak256(0x00, 0x40))
                let stake := and(word, 0xffffffffffffffffffffffffffffffff)
                if or(or(and(shr(128, word), 0xffffffffffffffff), lt(stake, minStake)), iszero(stake)) {
                    failure := 5
                    culprit := signer
                    break
                }
                signerMask := or(signerMask, shl(cursor, 1))
                previous := signer
            }
        }
        if (failure == 1) revert MalleableSignature();
        if (failure == 2) revert BadSignature();
        if (failure == 3) revert SignersNotAscending();
        if (failure == 4) revert NotInConsortium(culprit);
        if (failure == 5) revert UnregisteredMediator(culprit);
    }

    /// @dev Move `unlock` out of `who`'s locked balance and credit `credit` to its free balance.
    function _payOut(address who, uint256 unlock, uint256 credit) private {
        Account memory account = accounts[who];
        _storeAccount(who, account.free + credit, account.locked - unlock);
    }

    function _lock(address who, uint256 amount) private {
        Account memory account = accounts[who];
        if (account.free < amount) revert InsufficientFunds(who, account.free, amount);
        _storeAccount(who, account.free - amount, account.locked + amount);
    }

    /// @dev One read and one write of the packed slot (field-wise updates cost a warm SLOAD
    /// and an SSTORE each). Sums are checked in 256 bits, then must fit 128 (all the ether
    /// there is fits in ~87 bits, so this never fails in practice, but it cannot wrap).
    function _storeAccount(address who, uint256 free, uint256 locked) private {
        if (free > type(uint128).max || locked > type(uint128).max) revert AmountOverflow();
        accounts[who] = Account(uint128(free), uint128(locked));
    }

    function _toUint128(uint256 value) private pure returns (uint128) {
        if (value > type(uint128).max) revert AmountOverflow();
        return uint128(value);
    }

    function _toUint64(uint256 value) private pure returns (uint64) {
        if (value > type(uint64).max) revert AmountOverflow();
        return uint64(value);
    }

    function _requireStatus(bytes32 dealId, Status actual, Status expected) private pure {
        if (actual == expected) return;
        if (actual == Status.None) revert DealNotOpen(dealId);
        if (actual >= Status.Settled) revert AlreadySettled(dealId, actual);
        revert WrongStatus(dealId, actual);
    }

    function _requireSigner(bytes32 digest, bytes calldata signature, address expected)
        private
        view
    {
        address recovered = _recover(digest, signature);
        if (recovered != expected) revert WrongSigner(expected, recovered);
    }

    function _recover(bytes32 digest, bytes calldata signature) private view returns (address) {
        if (signature.length != 65) revert BadSignature();
        return _recoverAt(digest, _offsetOf(signature));
    }

    /// @dev `_recover` that answers address(0) for any signature it would refuse.
    function _tryRecover(bytes32 digest, bytes calldata signature)
        private
        view
        returns (address)
    {
        if (signature.length != 65) return address(0);
        (bytes32 r, bytes32 s, uint256 v) = _split(_offsetOf(signature));
        if (uint256(s) > HALF_CURVE_ORDER || (v != 27 && v != 28)) return address(0);
        return _ecrecover(digest, r, s, v);
    }

    function _split(uint256 offset) private pure returns (bytes32 r, bytes32 s, uint256 v) {
        assembly ("memory-safe") {
            r := calldataload(offset)
            s := calldataload(add(offset, 32))
            v := byte(0, calldataload(add(offset, 64)))
        }
    }

    function _offsetOf(bytes calldata data) private pure returns (uint256 offset) {
        assembly ("memory-safe") {
            offset := data.offset
        }
    }

    /// @dev Recover the signer of a 65-byte (r, s, v) signature at calldata `offset`; refuses
    /// high s (malleable), v outside {27, 28} and signatures that recover to nothing.
    function _recoverAt(bytes32 digest, uint256 offset) private view returns (address signer) {
        (bytes32 r, bytes32 s, uint256 v) = _split(offset);
        if (uint256(s) > HALF_CURVE_ORDER) revert MalleableSignature();
        if (v != 27 && v != 28) revert BadSignature();
        signer = _ecrecover(digest, r, s, v);
        if (signer == address(0)) revert BadSignature();
    }

    /// @dev address(0) when recovery fails.
    function _ecrecover(bytes32 digest, bytes32 r, bytes32 s, uint256 v)
        private
        view
        returns (address signer)
    {
        assembly ("memory-safe") {
            // The ecrecover precompile, without Solidity's per-call memory allocation: input at
            // the free memory pointer (not claimed), output in scratch space, zeroed first
            // because the precompile writes nothing when recovery fails.
            let ptr := mload(0x40)
            mstore(ptr, digest)
            mstore(add(ptr, 0x20), v)
            mstore(add(ptr, 0x40), r)
            mstore(add(ptr, 0x60), s)
            mstore(0x00, 0)
            pop(staticcall(gas(), 0x01, ptr, 0x80, 0x00, 0x20))
            signer := mload(0x00)
        }
    }

    function _typedDigest(bytes32 structHash) private view returns (bytes32 digest) {
        bytes32 separator = domainSeparator();
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, hex"1901")
            mstore(add(ptr, 0x02), separator)
            mstore(add(ptr, 0x22), structHash)
            digest := keccak256(ptr, 0x42)
        }
    }

    function _buildDomainSeparator() private view returns (bytes32) {
        return keccak256(
            abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this))
        );
    }

    function _enterGuard() private {
        if (withdrawing) revert Reentrancy();
        withdrawing = true;
    }

    function _exitGuard() private {
        withdrawing = false;
    }
}
