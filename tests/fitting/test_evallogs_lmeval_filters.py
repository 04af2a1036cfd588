"""lm-eval's answer extraction and exact_match as the lm-eval reader redoes them, checked against
lm-eval's own RegexFilter and metric function on generated text (needs lm_eval: the evals extra)."""

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from lm_eval.api.metrics import exact_match_hf_evaluate
from lm_eval.filters.extraction import RegexFilter

from fitting.evallogs import Extractor

REGEX = r"Answer: (-?[0-9]+)"


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from(list("Answer: -0123456789\n#x")), max_size=40),
    group=st.integers(-2, 1),
)
def test_answers_equal_lm_evals_regex_filter(text, group):
    """The extraction is lm-eval's RegexFilter (findall, group_select, first non-empty group, strip,
    fallback), checked against lm-eval itself on any text (no answer where it gives its fallback)."""
    for pattern in (REGEX, r"(-?[0-9]+)|Answer: (x)", r"#### (\-?[0-9\.\,]+)"):
        ours = Extractor(re.compile(pattern), group_select=group).answer(text)
        try:
            (theirs,) = RegexFilter(pattern, group_select=group).apply([[text]], [{}])[0]
        except IndexError:  # lm-eval stops on a group_select beyond the matches: no log has one
            assert ours is None
            continue
        if ours is None:
            assert theirs == "[invalid]" or not re.findall(pattern, text)
        else:
            assert ours == theirs


@settings(max_examples=200, deadline=None)
@given(answer=st.text(max_size=8), target=st.text(max_size=8), case=st.booleans(), punct=st.booleans())
def test_verdicts_equal_lm_evals_exact_match(answer, target, case, punct):
    """exact_match with its options (regexes_to_ignore, ignore_case, ignore_punctuation), checked
    against lm-eval's own metric function."""
    ignore = (",", r"\$")
    theirs = exact_match_hf_evaluate(
        [answer], [target], regexes_to_ignore=list(ignore), ignore_case=case, ignore_punctuation=punct
    )["exact_match"]
    ours = Extractor(None, ignore=ignore, ignore_case=case, ignore_punctuation=punct).correct(
        answer, [target]
    )
    assert ours == bool(theirs)
