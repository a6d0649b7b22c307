"""The Grad-CAM step: a study's settings explained on the same genuine pairs (`mfr gradcam`,
notebook 05)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mfr.core.config import StudyConfig
from mfr.core.errors import InputError
from mfr.core.precision import with_precision
from mfr.core.provenance import (
    claim,
    complete,
    file_digest,
    marks_its_runs,
)
from mfr.core.run_record import read_run
from mfr.study.steps.inputs import recorded_pairs_dir, require_complete, resolve_data_root


@marks_its_runs
@with_precision
def gradcam_step(out_dir: str | Path, study_dir: str | Path | None = None,
                 model_dir: str | Path | None = None, config: StudyConfig | None = None,
                 pairs_dir: str | Path | None = None, force: bool = False, **options: Any):
    """Grad-CAM maps, attention shares above the mask line and the deletion test (`mfr
    gradcam`, notebook 05) for one of: every setting of a study folder (`study_dir`: its
    ``baseline/`` and ``train_N<N>/``), one run folder (`model_dir`), or the bare core of
    `config` (its weights; ``None`` = seeded random init). `pairs_dir` defaults to
    ``study_dir/partition`` or the run's recorded pairs folder. `options` go to
    :func:`mfr.explain.setting_maps.run_gradcam` (n_images, seed, data_root, deletion_fraction,
    random_draws, n_boot, layer, progress). Returns its :class:`~mfr.explain.setting_maps.GradcamRun`.

    The fingerprint is the explained models' own run fingerprints and trained weights, the test
    pairs and the options; maps are always computed when called (the study runner skips a
    complete, unchanged folder without calling this).
    """
    from mfr.explain import setting_maps as gs
    from mfr.explain.gradcam import require_tensorflow

    if sum(x is not None for x in (study_dir, model_dir, config)) != 1:
        raise InputError("give exactly one of a study folder, a run folder or a config")
    require_tensorflow()  # before any slow work
    if study_dir is not None:
        settings = gs.find_settings(study_dir)
        pairs_dir = pairs_dir or Path(study_dir) / "partition"
    elif model_dir is not None:
        settings = [gs.read_setting(model_dir)]
        pairs_dir = pairs_dir or recorded_pairs_dir(model_dir)
    else:
        settings = [gs.Setting.core(config)]
    if pairs_dir is None:
        raise InputError("no pairs folder: pass --pairs DIR (the output folder of "
                         "`mfr partition`)")
    pairs_dir = Path(pairs_dir)
    require_complete(pairs_dir, "partition")
    from mfr.backbones import get_backbone

    for s in settings:  # the weights can be had, before any slow work
        get_backbone(s.config.backbone).check_weights(s.config.weights,
                                                      options.get("progress", True))
        if s.run_dir is not None:
            require_complete(Path(s.run_dir), "run")
    if options.get("seed") is None:
        options["seed"] = settings[0].config.seed
    options["data_root"] = resolve_data_root(options.get("data_root"), pairs_dir,
                                             settings[0].config)
    models = []
    for s in settings:
        run = read_run(s.run_dir, lenient=True) if s.run_dir is not None else None
        models.append({"name": s.name, "run": run.get("fingerprint") if run else None,
                       "trained": (run or {}).get("outputs", {}).get("final_trainable.h5"),
                       "weights": None if run else get_backbone(
                           s.config.backbone).weights_fingerprint(s.config.weights,
                                                                  s.config.seed)})
    fp = {"models": models, "pairs": file_digest(pairs_dir / "test.csv"),
          "options": {k: v for k, v in sorted(options.items())
                      if k not in ("progress", "data_root")}}
    claim(out_dir, "gradcam", fp, config=settings[0].config, force=force, reopen=True)
    result = gs.run_gradcam(settings, pairs_dir, out_dir, **options)
    complete(out_dir, "gradcam", fp, config=settings[0].config,
             outputs=["attention.csv", "deletion.csv", "attention_summary.csv",
                      "attention_summary.md", *(p.name for p in result.figures)],
             **result.record)
    return result
