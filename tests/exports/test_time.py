"""Timestamps: the fixed-width shortcut for ``YYYY-MM-DDTHH:MM:SS.fffZ`` gives what the regex path gives."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import example, given, settings
from hypothesis import strategies as st

from toolkit.exports._time import _ISO_ZONED, _all_ms_z, epoch_ms, epoch_ms_strings

_VALID = "2026-01-05T08:00:01.571Z"
_CHARS = st.sampled_from(list("0123456789-:.TZ +x") + ["é", "٣", "\x00"])
_EDITED = st.tuples(st.integers(0, len(_VALID) - 1), _CHARS).map(lambda e: _VALID[:e[0]] + e[1] + _VALID[e[0] + 1:])
_OTHER = st.sampled_from(["2026-01-05 23:59:59.999Z", "2026-13-05T08:00:01.571Z", "2026-01-05T08:00:01Z",
                          "2026-01-05T08:00:01.571+01:00", "1767600000"])
# mostly valid stamps with at most one edited character, so that one edit decides the shortcut
_STAMPS = st.tuples(st.integers(1, 8), _EDITED | _OTHER).map(lambda t: [_VALID] * t[0] + [t[1]]) | \
    st.lists(st.sampled_from([_VALID]) | _EDITED | _OTHER, min_size=1, max_size=12)


@settings(max_examples=300)
@given(stamps=_STAMPS)
@example(stamps=[_VALID, "2026-01-05T08:00:01.5710"])
def test_fixed_width_shortcut_equals_the_regex_path(stamps):
    arr = pa.array(stamps, type=pa.string())
    regex_says = pc.all(pc.match_substring_regex(arr, _ISO_ZONED)).as_py()
    assert _all_ms_z(arr) == (regex_says and all(len(s.encode()) == 24 for s in stamps))
    ms, ok = epoch_ms_strings(arr)
    ms_ref, ok_ref = epoch_ms_strings(pa.chunked_array([arr]))  # a chunked column never takes the shortcut
    assert ok.tolist() == ok_ref.tolist()
    assert ms[ok].tolist() == ms_ref[ok_ref].tolist()


def test_the_usual_export_form_is_read_exactly():
    stamps = [_VALID, "2026-01-05 08:00:01.999Z", "1970-01-01T00:00:00.000Z"]
    assert _all_ms_z(pa.array(stamps, type=pa.string()))
    ms, ok = epoch_ms(stamps)
    assert ok.all()
    assert ms.tolist() == [1767600001571, 1767600001999, 0]
    sliced = pa.array(["x", *stamps], type=pa.string()).slice(1)  # an array that starts at an offset
    assert _all_ms_z(sliced)
    assert epoch_ms_strings(sliced)[0].tolist() == ms.tolist()
    assert not _all_ms_z(pa.array([_VALID, None], type=pa.string()))
    assert np.array_equal(epoch_ms([_VALID, None])[1], [True, False])
