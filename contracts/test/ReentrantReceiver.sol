// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

// Test-only: an account that tries to re-enter the settlement contract when paid, or refuses
// payment outright. Not deployed outside tests.
interface ISettlementWithdraw {
    function deposit() external payable;
    function requestWithdraw(uint256 amount) external;
    function withdraw() external;
}

contract ReentrantReceiver {
    ISettlementWithdraw public immutable target;
    bool public immutable refusePayment;
    uint256 public paymentsReceived;
    bool public reentrySucceeded;

    constructor(address target_, bool refusePayment_) {
        target = ISettlementWithdraw(target_);
        refusePayment = refusePayment_;
    }

    function depositAndRequest(uint256 amount) external payable {
        target.deposit{value: msg.value}();
        target.requestWithdraw(amount);
    }

    function attack() external {
        target.withdraw();
    }

    receive() external payable {
        require(!refusePayment, "refused");
        ++paymentsReceived;
        if (paymentsReceived == 1) {
            try target.withdraw() {
                reentrySucceeded = true;
            } catch {}
        }
    }
}
