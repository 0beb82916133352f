"""The small sets separate the untrained trunk from the supervised ceiling, beyond noise."""

from embodied.encoder import load_encoder
from embodied.eval.ceiling import train_ceiling
from embodied.eval.embed import embed
from embodied.eval.metrics import score_objects
from embodied.eval.report import Summary
from embodied.eval.sets import load_set

STEPS = 200


def test_supervised_ceiling_beats_random_on_centric_category_metrics(tmp_path):
    ckpt = train_ceiling(tmp_path / "ceiling", "small", steps=STEPS, progress=False)
    data = load_set("centric", "small", progress=False)
    scores = {
        name: score_objects(embed(enc, data["images"]), data, draws=2)
        for name, enc in (("random", load_encoder("random")), ("supervised (category)", load_encoder(ckpt)))
    }
    summary = Summary({"centric": scores}, draws=1000)
    for metric in ("category R@1", "category linear", "category kNN", "category 6-shot"):
        d = summary.difference("centric", "supervised (category)", "random", metric)
        assert d.lo > 0, (metric, d)
    # a finished ceiling is reused, not retrained
    mtime = ckpt.stat().st_mtime_ns
    assert train_ceiling(tmp_path / "ceiling", "small", steps=STEPS, progress=False) == ckpt
    assert ckpt.stat().st_mtime_ns == mtime
