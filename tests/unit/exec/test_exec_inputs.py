import contextlib

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lilypad_p2p.exec import JobInputs, MalformedInputs

PATH_COMPONENT = st.from_regex(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,15}", fullmatch=True)
PATHS = st.lists(PATH_COMPONENT, min_size=1, max_size=3).map("/".join)
PARAM_VALUES = st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=50))


def _raw(document):
    return msgpack.packb(document, use_bin_type=True)


@given(
    st.dictionaries(PATHS, st.binary(max_size=64), max_size=5),
    st.dictionaries(st.text(min_size=1, max_size=10), PARAM_VALUES, max_size=5),
)
def test_round_trip_is_exact(files, params):
    leaves = set(files)
    # A path may not be both a file and a directory; drop clashing draws.
    files = {p: c for p, c in files.items() if not any(o.startswith(p + "/") for o in leaves)}
    inputs = JobInputs(files=files, params=params)
    encoded = inputs.encode()
    decoded = JobInputs.decode(encoded)
    assert dict(decoded.files) == files
    assert dict(decoded.params) == params
    assert decoded.encode() == encoded


def test_encoding_is_independent_of_insertion_order():
    one = JobInputs(files={"b": b"2", "a": b"1"}, params={"y": 1, "x": "s"})
    two = JobInputs(files={"a": b"1", "b": b"2"}, params={"x": "s", "y": 1})
    assert one.encode() == two.encode()


@pytest.mark.parametrize(
    "path", ["", "/abs", "a/../b", "..", ".", "a//b", "a/", "sp ace", "nul\x00", "é", "x" * 256]
)
def test_unsafe_paths_are_rejected(path):
    with pytest.raises(MalformedInputs):
        JobInputs(files={path: b""})


def test_a_path_cannot_be_both_file_and_directory():
    with pytest.raises(MalformedInputs, match="both as files and as directories"):
        JobInputs(files={"a": b"", "a/b": b""})


@pytest.mark.parametrize("value", [1.5, None, b"bytes", [1], {"a": 1}, 2**63])
def test_parameter_values_outside_int_str_bool_are_rejected(value):
    with pytest.raises(MalformedInputs):
        JobInputs(params={"p": value})


def _document(**overrides):
    document = {"files": {}, "params": {}, "type": "job-inputs", "v": 1}
    document.update(overrides)
    return document


@pytest.mark.parametrize(
    "raw",
    [
        b"\xc1",
        b"",
        _raw([1, 2]),
        _raw({**_document(), "extra": 1}),
        _raw(_document(v=2)),
        _raw(_document(type="other")),
        _raw(_document(files=[])),
        _raw(_document(files={"a": "text, not bytes"})),
        _raw(_document(params={"p": 1.0})),
    ],
)
def test_malformed_documents_are_rejected(raw):
    with pytest.raises(MalformedInputs):
        JobInputs.decode(raw)


def test_non_canonical_key_order_is_rejected():
    unsorted = {"v": 1, "type": "job-inputs", "params": {}, "files": {}}
    with pytest.raises(MalformedInputs, match="canonical"):
        JobInputs.decode(_raw(unsorted))


def test_inputs_are_immutable_after_construction():
    files = {"a": b"1"}
    inputs = JobInputs(files=files)
    files["b"] = b"2"
    assert set(inputs.files) == {"a"}
    with pytest.raises(TypeError):
        inputs.files["c"] = b"3"  # type: ignore[index]


MSGPACK_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text()
    | st.binary(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.binary(max_size=200))
def test_garbage_bytes_yield_inputs_or_malformed_inputs_only(raw):
    with contextlib.suppress(MalformedInputs):
        JobInputs.decode(raw)


@given(
    st.fixed_dictionaries(
        {"files": MSGPACK_VALUES, "params": MSGPACK_VALUES, "type": MSGPACK_VALUES},
        optional={"v": MSGPACK_VALUES, "x": MSGPACK_VALUES},
    )
)
def test_wrongly_shaped_documents_yield_malformed_inputs_only(document):
    with contextlib.suppress(MalformedInputs):
        JobInputs.decode(_raw(document))
