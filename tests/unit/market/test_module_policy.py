"""Provider module policies in resource offers: solvers match only what a provider accepts."""

import pytest
from matching_cases import NOW, job, offer, spec

from lilypad_p2p.market import ModulePolicy, entry_accepts, match, mismatch
from lilypad_p2p.wire import InvalidMessage, JobOffer, ResourceSpec

DIGEST = "sha256:" + "ab" * 32
IMAGE = f"localhost:5000/team/say@{DIGEST}"
OTHER_IMAGE = "localhost:5000/other/say@sha256:" + "cd" * 32
USER_MODULE = "bafkreihcfujiyqsk7kcavfvomixdr7uszklyfoqndlgkhw5aqcuz7yynj4"


@pytest.mark.parametrize(
    ("entry", "image", "need", "accepted"),
    [
        (USER_MODULE, "", spec(), True),
        ("digest:" + DIGEST, IMAGE, spec(), True),
        ("digest:" + DIGEST, OTHER_IMAGE, spec(), False),
        ("digest:" + DIGEST, "", spec(), False),  # no image named: a digest rule cannot match
        ("repo:localhost:5000/team/", IMAGE, spec(), True),
        ("repo:localhost:5000/team/", OTHER_IMAGE, spec(), False),
        ("repo:recipe:", "recipe:busybox", spec(), False),  # prefixes are for registry images
        ("any", OTHER_IMAGE, spec(), True),
        ("any/1000/1024/1000/0", OTHER_IMAGE, spec(), True),
        ("any/999/1024/1000/0", OTHER_IMAGE, spec(), False),
        ("any/1000/1024/1000/0", OTHER_IMAGE, spec(gpus=1, vram=10), False),
        ("any/garbage", OTHER_IMAGE, spec(), False),
    ],
)
def test_each_rule(entry, image, need, accepted):
    module = USER_MODULE if entry == USER_MODULE else "bafkrei-other"
    assert entry_accepts(entry, module, image, need) is accepted


def test_a_policy_excluded_module_is_never_matched_and_an_accepted_one_is():
    strict = offer(nonce=1, modules=("repo:localhost:5000/team/",), price=1)
    by_id = offer(nonce=2, modules=("hash",), price=2)
    wanted = job(nonce=1, module=USER_MODULE, image=OTHER_IMAGE)
    assert mismatch(wanted, strict, NOW) == "module not offered"
    assert match([wanted], [strict, by_id], NOW, epoch=1).matches == ()
    ours = job(nonce=2, module=USER_MODULE, image=IMAGE)
    hashing = job(nonce=3, module="hash")
    matched = dict(match([ours, hashing], [strict, by_id], NOW, epoch=1).matches)
    assert matched == {ours.cid: strict.cid, hashing.cid: by_id.cid}


def test_rule_offers_are_still_chosen_cheapest_first_with_listed_ones():
    listed = offer(nonce=1, modules=(USER_MODULE,), price=4)
    anything = offer(nonce=2, modules=("any",), price=3)
    wanted = job(nonce=1, module=USER_MODULE, image=IMAGE)
    matched = match([wanted], [listed, anything], NOW, epoch=1).matches
    assert matched == ((wanted.cid, anything.cid),)


def test_policy_entries_and_refusals():
    policy = ModulePolicy(module_ids=(USER_MODULE,), image_digests=(DIGEST,),
                          repository_prefixes=("localhost:5000/team/",),
                          any_within=ResourceSpec(milli_cpu=500, ram_mb=64, disk_mb=16))
    assert policy.entries() == tuple(sorted((
        USER_MODULE, "digest:" + DIGEST, "repo:localhost:5000/team/", "any/500/64/16/0")))
    assert policy.refusal("bafkrei-other", OTHER_IMAGE, spec()) is not None
    assert policy.refusal("bafkrei-other", OTHER_IMAGE, spec(500, 64, 16)) is None
    with pytest.raises(ValueError, match="sha256"):
        ModulePolicy(image_digests=("sha256:xyz",))


def test_a_job_offer_image_must_be_pinned():
    with pytest.raises(InvalidMessage, match="image"):
        job(image="localhost:5000/team/say:latest")
    assert isinstance(job(image="recipe:busybox"), JobOffer)
