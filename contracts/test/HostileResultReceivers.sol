// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

interface IRequests {
    struct Policy {
        address[] mediators;
        uint8 threshold;
        uint8 mode;
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
}

// Test-only: requesters whose callback reverts, burns all its gas, or returns a huge blob.
contract HostileResultReceiver {
    enum Mode {
        Revert,
        BurnGas,
        ReturnBomb
    }

    IRequests public immutable requests;
    Mode public immutable mode;

    constructor(address requests_, Mode mode_) {
        requests = IRequests(requests_);
        mode = mode_;
    }

    function ask(
        string calldata module,
        bytes calldata inputs,
        uint64 deadline,
        uint32 gasLimit,
        IRequests.Policy calldata policy
    ) external payable returns (bytes32) {
        return requests.requestJob{value: msg.value}(module, inputs, deadline, gasLimit, policy);
    }

    function onLilypadResult(bytes32, bytes32, bytes calldata, bool) external view {
        if (mode == Mode.Revert) revert("no thanks");
        if (mode == Mode.BurnGas) {
            while (true) {}
        }
        assembly {
            return(0, 1000000)
        }
    }

    receive() external payable {}
}
