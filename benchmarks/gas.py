"""Gas of every settlement-contract function, against its targets.

    python benchmarks/gas.py [--backend embedded|anvil] [--samples 5]

Deals use random hashes and salts and non-round amounts (calldata cost depends on the bytes).
Every figure is the median `gasUsed` of `--samples` transactions on distinct deals, measured on
a fresh contract where all parties already hold a deposit (the usual state). Writes the run
under its backend's key in benchmarks/results/gas.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from lilypad_p2p.chain import (
    Chain,
    Deal,
    Outcome,
    SettlementClient,
    SettlementItem,
    SkipReason,
    Verdict,
    deploy_settlement,
    skipped_deals,
)
from lilypad_p2p.testing import (
    advance_chain_time,
    anvil_test_chain,
    chain_test_accounts,
    embedded_test_chain,
)

ACCOUNTS = 64
NOTICE_S = 60
STAKE = 10**18
BATCH = 50
TARGETS = {
    "openDeal": 90_000,
    "settle": 50_000,
    "settleBatch (50 deals), per deal": 25_000,
    "settleBatch (50 deals, 50 job creators), per deal": 25_000,
    "resolve 3-of-5": 75_000,
    "resolve, per extra signature": 7_000,
}
RESULTS = Path(__file__).parent / "results" / "gas.json"


class Bench:
    def __init__(self, chain: Chain, samples: int) -> None:
        self.chain = chain
        self.samples = samples
        self.rng = random.Random(7)
        accounts = chain_test_accounts(ACCOUNTS)
        self.deployer = accounts[0]
        self.address = deploy_settlement(
            chain, self.deployer, withdraw_notice_s=NOTICE_S, min_mediator_stake=STAKE
        )
        base = SettlementClient(chain, self.address, self.deployer)
        self.base = base
        self.jc = base.with_account(accounts[1])
        self.rp = base.with_account(accounts[2])
        self.job_creators = [base.with_account(a) for a in accounts[3:3 + BATCH]]
        self.mediators = sorted(
            (base.with_account(a) for a in accounts[3 + BATCH:3 + BATCH + 11]),
            key=lambda c: int(c.account.address, 16),
        )
        deployment = chain.w3.eth.get_block("latest")["transactions"][0]
        self.figures: dict[str, int] = {
            "deploy": int(chain.w3.eth.get_transaction_receipt(deployment)["gasUsed"])
        }

    def amount(self) -> int:
        return self.rng.randrange(10**15, 10**18)

    def deal(self, n: int = 5, k: int = 3, jc: SettlementClient | None = None) -> Deal:
        jc = jc or self.jc
        return Deal(
            job_creator=jc.account.address, provider=self.rp.account.address,
            payment=self.amount(), collateral=self.amount(), mediation_fee=self.amount() // 10,
            mediators=tuple(m.account.address for m in self.mediators[:n]), threshold=k,
            result_deadline=self.chain.now() + 3600, acceptance_window=600,
            mediation_window=600, job_spec_hash=os.urandom(32), module_hash=os.urandom(32),
            salt=os.urandom(32),
        )

    def open(self, deal: Deal, jc: SettlementClient | None = None) -> int:
        jc = jc or self.jc
        return self.rp.send(
            "openDeal", deal.terms_abi(), list(deal.mediators), jc.sign(deal), self.rp.sign(deal)
        ).gas_used

    def submit(self, deal: Deal) -> int:
        result = os.urandom(32)
        sig = self.rp.sign(self.rp.result_commitment(deal, result))
        return self.rp.submit_result(deal, result, sig).gas_used

    def disputed(self, n: int = 5, k: int = 3) -> tuple[Deal, bytes]:
        deal = self.deal(n, k)
        self.open(deal)
        result = os.urandom(32)
        self.rp.submit_result(deal, result, self.rp.sign(self.rp.result_commitment(deal, result)))
        self.jc.dispute(deal)
        return deal, result

    def resolve(self, n: int, signers: int) -> int:
        deal, result = self.disputed(n, min(3, signers))
        verdict = Verdict(self.base.deal_id(deal), Outcome.PROVIDER_CORRECT, result)
        sigs = [m.sign(verdict) for m in self.mediators[:signers]]
        return self.base.resolve(deal, verdict, sigs).gas_used

    def measure(self, name: str, one: Callable[[], int]) -> int:
        value = int(statistics.median(one() for _ in range(self.samples)))
        self.figures[name] = value
        target = TARGETS.get(name)
        verdict = "" if target is None else ("  ok" if value <= target else "  MISSED")
        shown = "" if target is None else f" (target <= {target:,})"
        print(f"{name:<52} {value:>9,}{shown}{verdict}", flush=True)
        return value

    def run(self) -> None:
        print(f"{'deploy':<52} {self.figures['deploy']:>9,}")
        for client in (self.jc, self.rp, *self.job_creators):
            client.deposit(10**21)
        for mediator in self.mediators:
            mediator.register_mediator(STAKE)
        self.measure("deposit", lambda: self.jc.deposit(self.amount()).gas_used)
        self.measure("openDeal", lambda: self.open(self.deal()))
        self.measure("submitResult", lambda: self._opened(self.submit))
        self.measure("settle", self._settle)
        self.measure("settle after submitResult", lambda: self._settle(submitted=True))
        self.measure("settle after dispute (Acceptance outranks it)",
                     lambda: self._settle(submitted=True, disputed=True))
        self._batches()
        self._spot_checks()
        self.measure("dispute", self._dispute)
        self.measure("resolve 3-of-5", lambda: self.resolve(5, 3))
        four, five = self.resolve(5, 4), self.resolve(5, 5)
        self.figures["resolve 4-of-5"], self.figures["resolve 5-of-5"] = four, five
        print(f"{'resolve 4-of-5':<52} {four:>9,}\n{'resolve 5-of-5':<52} {five:>9,}")
        wide = {s: self.resolve(11, s) for s in (3, 7, 11)}
        for signers, gas in wide.items():
            self.figures[f"resolve {signers}-of-11"] = gas
            print(f"{f'resolve {signers}-of-11':<52} {gas:>9,}")
        slope = (wide[11] - wide[3]) // 8
        self.figures["resolve, per extra signature"] = slope
        target = TARGETS["resolve, per extra signature"]
        print(f"{'resolve, per extra signature':<52} {slope:>9,} (target <= {target:,})"
              f"  {'ok' if slope <= target else 'MISSED'}")
        self.measure("addVerdictSignature (a left-out member joins)", self._add_signature)
        self.measure("claimMediationFee (pays all 3 signers)", self._claim_fee)
        self.measure("slashEquivocation", self._slash)
        self.measure("claimTimeout (no result)", lambda: self._timeout("open"))
        self.measure("claimTimeout (job creator silent)", lambda: self._timeout("result"))
        self.measure("claimTimeout (mediators silent)", lambda: self._timeout("dispute"))
        self.measure("requestWithdraw", lambda: self.jc.request_withdraw(self.amount()).gas_used)
        self.measure("withdraw", self._withdraw)
        self.measure("registerMediator (top-up)", lambda: self.mediators[0].register_mediator(
            self.amount()).gas_used)
        measure_key_safety(self)

    def _opened(self, then: Callable[[Deal], int]) -> int:
        deal = self.deal()
        self.open(deal)
        return then(deal)

    def _settle(self, submitted: bool = False, disputed: bool = False) -> int:
        deal = self.deal()
        self.open(deal)
        result = os.urandom(32)
        if submitted:
            self.rp.submit_result(deal, result,
                                  self.rp.sign(self.rp.result_commitment(deal, result)))
        if disputed:
            self.jc.dispute(deal)
        sig = self.jc.sign(self.jc.acceptance(deal, result))
        return self.rp.settle(deal, result, sig).gas_used

    def _batches(self) -> None:
        for name, creators in (
            ("settleBatch (50 deals), per deal", [self.jc] * BATCH),
            ("settleBatch (50 deals, 50 job creators), per deal", self.job_creators),
        ):
            def one(creators: list[SettlementClient] = creators) -> int:
                items = []
                for jc in creators:
                    deal = self.deal(jc=jc)
                    self.open(deal, jc)
                    result = os.urandom(32)
                    items.append(SettlementItem(deal, result, jc.sign(jc.acceptance(deal, result))))
                receipt = self.rp.settle_batch(items)
                assert receipt is not None
                return receipt.gas_used // BATCH

            saved, self.samples = self.samples, 1  # 50 deals per sample already
            self.measure(name, one)
            self.samples = saved
        self.measure("settleBatch (10 deals, 1 with a bad Acceptance: skipped), total",
                      self._batch_with_bad_deal)

    def _spot_checks(self) -> None:
        """An agreeing off-chain check adds no transaction to its deal: its fee shares are paid
        with many other deals' in one payFees (roles/_spot_check.py). 50 deals, each checked by
        3 of the same 5 mediators, owe those 5 one payFees."""
        payees = [m.account.address for m in self.mediators[:5]]

        def pay() -> int:
            return self.jc.send("payFees", payees, [self.amount() // 10 for _ in payees]).gas_used

        total = self.measure("payFees (5 mediators: 50 agreeing checks' fees), total", pay)
        share = total // BATCH
        self.figures["agreeing check: its share of that payFees, per deal"] = share
        unchecked = self.figures["openDeal"] + self.figures["settleBatch (50 deals), per deal"]
        self.figures["unchecked deal: openDeal + settleBatch share"] = unchecked
        self.figures["checked deal, check agreed: openDeal + settleBatch share + fee share"] = (
            unchecked + share)
        for name in ("agreeing check: its share of that payFees, per deal",
                     "unchecked deal: openDeal + settleBatch share",
                     "checked deal, check agreed: openDeal + settleBatch share + fee share"):
            print(f"{name:<52} {self.figures[name]:>9,}", flush=True)

    def _batch_with_bad_deal(self) -> int:
        items = []
        for index in range(10):
            deal = self.deal()
            self.open(deal)
            result = os.urandom(32)
            signer = self.rp if index == 4 else self.jc  # not the job creator's Acceptance
            acceptance = signer.sign(self.jc.acceptance(deal, result))
            items.append(SettlementItem(deal, result, acceptance))
        receipt = self.rp.settle_batch(items)
        assert receipt is not None
        skipped = skipped_deals(self.rp, receipt)
        assert list(skipped.values()) == [SkipReason.BAD_SIGNATURE], skipped
        return receipt.gas_used

    def _dispute(self) -> int:
        deal = self.deal()
        self.open(deal)
        self.submit(deal)
        return self.jc.dispute(deal).gas_used

    def _claim_fee(self) -> int:
        deal, result = self.disputed()
        verdict = Verdict(self.base.deal_id(deal), Outcome.PROVIDER_CORRECT, result)
        self.base.resolve(deal, verdict, [m.sign(verdict) for m in self.mediators[:3]])
        advance_chain_time(self.chain, 601)  # the late-signature window
        return self.mediators[1].claim_mediation_fee(deal).gas_used

    def _add_signature(self) -> int:
        deal, result = self.disputed()
        verdict = Verdict(self.base.deal_id(deal), Outcome.PROVIDER_CORRECT, result)
        self.base.resolve(deal, verdict, [m.sign(verdict) for m in self.mediators[:3]])
        late = self.mediators[3]
        return late.add_verdict_signature(deal, verdict, late.sign(verdict)).gas_used

    def _slash(self) -> int:
        mediator = self.mediators[10]
        mediator.register_mediator(STAKE)
        deal_id = os.urandom(32)
        first = Verdict(deal_id, Outcome.PROVIDER_CORRECT, os.urandom(32))
        second = Verdict(deal_id, Outcome.PROVIDER_WRONG, os.urandom(32))
        return self.jc.slash_equivocation(
            first, mediator.sign(first), second, mediator.sign(second)
        ).gas_used

    def _timeout(self, stage: str) -> int:
        deal = self.deal()
        self.open(deal)
        if stage in ("result", "dispute"):
            self.submit(deal)
        if stage == "dispute":
            self.jc.dispute(deal)
        advance_chain_time(self.chain, 3601)
        return self.base.claim_timeout(deal).gas_used

    def _withdraw(self) -> int:
        self.jc.request_withdraw(self.amount())
        advance_chain_time(self.chain, NOTICE_S)
        return self.jc.withdraw().gas_used


# ---------------------------------------------------------------- payout address, key rotation


def measure_key_safety(bench: Bench) -> None:
    """The payout-address and key-rotation calls; each sample on a fresh funded key."""
    from eth_account import Account

    from lilypad_p2p.chain._keys import sign_key_rotation

    def fresh() -> SettlementClient:
        key = Account.create()
        bench.chain.transact(bench.deployer, key.address, b"", 10**20)
        client = bench.base.with_account(key)
        client.deposit(10**19)
        return client

    def set_first() -> int:
        return fresh().send("setPayoutAddress", Account.create().address).gas_used

    def announce() -> int:
        client = fresh()
        client.send("setPayoutAddress", Account.create().address)
        return client.send("setPayoutAddress", Account.create().address).gas_used

    def cancel() -> int:
        client = fresh()
        cold = Account.create()
        bench.chain.transact(bench.deployer, cold.address, b"", 10**18)
        client.send("setPayoutAddress", cold.address)
        client.send("setPayoutAddress", Account.create().address)
        return client.with_account(cold).send(
            "cancelPayoutChange", client.account.address).gas_used

    def withdraw_to_payout() -> int:
        client = fresh()
        client.send("setPayoutAddress", Account.create().address)
        client.request_withdraw(bench.amount())
        advance_chain_time(bench.chain, NOTICE_S)
        return client.withdraw().gas_used

    def withdraw_by_payout() -> int:
        client = fresh()
        cold = Account.create()
        bench.chain.transact(bench.deployer, cold.address, b"", 10**18)
        client.send("setPayoutAddress", cold.address)
        as_cold = client.with_account(cold)
        as_cold.send("requestWithdrawFor", client.account.address, bench.amount())
        advance_chain_time(bench.chain, NOTICE_S)
        return as_cold.send("withdrawFor", client.account.address).gas_used

    def rotate(with_payout: bool) -> int:
        client = fresh()
        if with_payout:
            client.send("setPayoutAddress", Account.create().address)
        new_key = Account.create()
        signature = sign_key_rotation(client, client.account.address, new_key)
        return client.send("rotateKey", new_key.address, signature).gas_used

    def sweep() -> int:
        client = fresh()
        new_key = Account.create()
        client.send("rotateKey", new_key.address,
                    sign_key_rotation(client, client.account.address, new_key))
        client.deposit(bench.amount())  # a credit that arrives after the rotation
        return bench.base.send("sweepRotated", client.account.address).gas_used

    bench.measure("setPayoutAddress (first)", set_first)
    bench.measure("setPayoutAddress (announce a change)", announce)
    bench.measure("cancelPayoutChange", cancel)
    bench.measure("withdraw (to a payout address)", withdraw_to_payout)
    bench.measure("withdrawFor (by the payout address)", withdraw_by_payout)
    bench.measure("rotateKey", lambda: rotate(False))
    bench.measure("rotateKey (with a payout address)", lambda: rotate(True))
    bench.measure("sweepRotated", sweep)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("embedded", "anvil"), default="embedded")
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args()
    with ExitStack() as stack:
        if args.backend == "embedded":
            chain = embedded_test_chain(ACCOUNTS)
        else:
            chain = stack.enter_context(anvil_test_chain(ACCOUNTS))
        bench = Bench(chain, args.samples)
        bench.run()
    missed = {k: v for k, v in bench.figures.items() if k in TARGETS and v > TARGETS[k]}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    runs = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    runs[args.backend] = {"samples": args.samples, "gas": bench.figures, "missed": missed}
    runs["targets"] = TARGETS
    RESULTS.write_text(json.dumps(runs, indent=2) + "\n")
    print(f"wrote {RESULTS}; targets missed: {sorted(missed) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
