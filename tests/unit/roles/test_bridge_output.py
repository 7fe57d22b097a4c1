"""What the chain bridge delivers: the store's copy of a small output, else the results file."""

from lilypad_p2p.deal_detail import ClientDetail
from lilypad_p2p.market import new_client_deal
from lilypad_p2p.roles._bridge import deal_output
from lilypad_p2p.store import DealStore


def test_small_outputs_come_from_the_store_large_ones_from_their_file(tmp_path):
    store = DealStore.open(tmp_path / "db")
    large = tmp_path / "large.tar"
    large.write_bytes(b"x" * 4096)
    for key, path in (("small", str(tmp_path / "small.tar")), ("large", str(large)),
                      ("gone", str(tmp_path / "deleted.tar")), ("none", None)):
        detail = ClientDetail(job_offer=b"", module="hash", submitted_ms=0, result_path=path)
        store.insert(new_client_deal(key, now_ms=0, expires_ms=1), detail, chain_id=1)
    store.put_result("small", b"kept")

    assert deal_output(store, store.get("small")) == b"kept"
    # Over the store's size for copies: delivered from the client's results file (by CID).
    assert deal_output(store, store.get("large")) == large
    assert deal_output(store, store.get("gone")) is None
    assert deal_output(store, store.get("none")) is None
