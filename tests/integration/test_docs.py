"""Tables in doc/ that repeat what the code holds must agree with it.

doc/bounces.md lists the enhanced codes and phrases of
src/smtp/classify.c in its order; a change to one without the other
fails here.
"""
import os
import pathlib
import re

SOURCE = pathlib.Path(os.environ.get("SEALPOST_SOURCE", "."))


def class_names(code):
    return dict(re.findall(r'\{SP_SMTP_CLASS_(\w+), "(\w+)", \d+\}', code))


def test_bounce_table_matches_the_classifier():
    code = (SOURCE / "src" / "smtp" / "classify.c").read_text()
    doc = (SOURCE / "doc" / "bounces.md").read_text()
    names = class_names(code)
    phrases_at = code.index("phrase_table[]")

    enhanced = [(c, names[k]) for c, k in re.findall(
        r'\{"([\d.]+)", SP_SMTP_CLASS_(\w+)\}', code[:phrases_at])]
    phrases = [(p, names[k]) for p, k in re.findall(
        r'\{"([^"]+)", SP_SMTP_CLASS_(\w+)\}', code[phrases_at:])]
    assert len(enhanced) > 20 and len(phrases) > 40

    doc_enhanced = re.findall(r"^\| X\.([\d.]+) \| `(\w+)` \|", doc, re.M)
    doc_phrases = re.findall(r"^\| ([^|`]+?) \| `(\w+)` \|$", doc, re.M)
    assert doc_enhanced == enhanced
    assert doc_phrases == phrases
