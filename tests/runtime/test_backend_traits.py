"""Each runner class declares what it is (precisions, family, requirements, options), the
factory, edgepose-run and edgepose-bench read those declarations, and an option no runner
takes is an error instead of being dropped."""
from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest

from edgepose.bundle import PRECISIONS
from edgepose.errors import ConfigError, EdgePoseError
from edgepose.runtime import BACKENDS, DESCRIPTIONS, open_runner
from edgepose.runtime.bench import rows
from edgepose.runtime.bench.runner import BenchSettings, runner_options
from edgepose.runtime.runners import DEFAULT_PRECISION, Runner


def _init_keywords(cls) -> set:
    """Every keyword the class's __init__ chain takes, beyond bundle/precision/strict."""
    names = set()
    for klass in cls.__mro__:
        if klass is Runner or "__init__" not in vars(klass):
            continue
        for p in inspect.signature(klass.__init__).parameters.values():
            if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD:
                names.add(p.name)
    return names - {"self", "bundle", "precision", "strict"}


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_each_backend_declares_itself_and_its_options_match_its_constructor(name):
    cls = BACKENDS[name]
    assert cls.backend == name
    assert cls.description and DESCRIPTIONS[name] == cls.description
    assert cls.precisions and set(cls.precisions) <= set(PRECISIONS)
    assert cls.default_precision in cls.precisions
    assert cls.family_name() in BACKENDS and "fp32" in BACKENDS[cls.family_name()].precisions
    assert cls.requires, "a backend names the Python package it needs"
    assert set(cls.options) == _init_keywords(cls), "options must list exactly what __init__ takes"
    assert set(cls.settings.values()) <= set(cls.options)


def _required_in_source(cls) -> set:
    """The packages the class's module loads through ``require("pkg", ...)``: read from its
    source, independently of the ``requires`` declaration."""
    tree = ast.parse(inspect.getsource(inspect.getmodule(cls)))
    return {n.args[0].value for n in ast.walk(tree) if isinstance(n, ast.Call) and n.args
            and getattr(n.func, "id", getattr(n.func, "attr", "")) == "require" and isinstance(n.args[0], ast.Constant)}


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_a_backend_declares_the_package_its_module_requires(name):
    cls = BACKENDS[name]
    assert set(cls.requires) == _required_in_source(cls)


@pytest.mark.parametrize("name", ["onnxruntime", "qdq-reference"])
def test_every_declared_precision_runs_on_a_real_bundle_and_the_others_are_refused(bundle, name):
    path, _ = bundle  # fp32, fp16 and int8 ONNX files
    cls = BACKENDS[name]
    image = np.zeros((1,) + tuple(open_runner(path, name).input_spec.shape[1:]), np.uint8)
    for precision in PRECISIONS:
        if precision in cls.precisions:
            with open_runner(path, name, precision, strict=True) as r:
                poses = r.infer(image)
            assert r.model_path.name == ("model.onnx" if precision == "fp32" else f"model.{precision}.onnx")
            assert np.isfinite(poses.position).all()
        else:
            with pytest.raises(EdgePoseError, match=precision):
                open_runner(path, name, precision, strict=True)
    assert rows.RowPlan("qdq-reference", "int8").note.startswith("Q/DQ evaluated in float")
    assert rows.RowPlan("onnxruntime", "fp32").note == ""


@pytest.mark.parametrize("backend,typo", [("onnxruntime", "intra_op_thread"), ("qdq-reference", "threads"),
                                          ("torch", "intra_op_threads"), ("tensorrt", "threads")])
def test_an_option_the_backend_does_not_take_is_an_error(bundle, backend, typo):
    with pytest.raises(ConfigError, match=rf"the {backend} backend has no option\(s\) \['{typo}'\]; it takes"):
        open_runner(bundle[0], backend, **{typo: 1})


def test_generic_settings_become_each_backends_own_option():
    settings = BenchSettings(runner_settings={"threads": 2, "cuda_graph": True})
    assert runner_options(rows.RowPlan("onnxruntime", "fp32"), settings) == {"intra_op_threads": 2}
    assert runner_options(rows.RowPlan("qdq-reference", "int8"), settings) == {"intra_op_threads": 2}
    assert runner_options(rows.RowPlan("torch", "fp32"), settings) == {"threads": 2}
    assert runner_options(rows.RowPlan("tensorrt", "fp16"), settings) == {"cuda_graph": True}
    assert BACKENDS["onnxruntime"].options_for(threads=0, cuda_graph=True) == ({}, ["cuda_graph"])
    with pytest.raises(ConfigError, match="unknown runner setting 'fibres'"):
        BACKENDS["torch"].options_for(fibres=3)


def test_one_default_precision_and_one_check_of_the_names(bundle):
    path, _ = bundle
    assert DEFAULT_PRECISION == "fp16"
    r = open_runner(path, "onnxruntime")  # the CLI's default, and PoseEstimator's
    assert r.precision == "fp16" and r.model_path.name == "model.fp16.onnx"
    assert open_runner(path, "qdq-reference").precision == "int8"
    with pytest.raises(ConfigError, match=r"precision 'bf16': unknown precision; expected one of fp32, fp16, int8"):
        open_runner(path, "onnxruntime", "bf16")


def test_a_registered_backend_is_planned_from_its_declarations(monkeypatch):
    from edgepose.runtime import register_backend
    from edgepose.runtime.runners import factory

    class Accel(Runner):
        """An out-of-tree accelerator."""

        backend = "accel"
        description = "a vendor NPU"
        precisions = ("int8",)
        family = "onnxruntime"
        requires = ("numpy",)

    monkeypatch.setattr(factory, "BACKENDS", dict(BACKENDS))
    monkeypatch.setattr(factory, "DESCRIPTIONS", dict(DESCRIPTIONS))
    import edgepose.runtime.runners as runners_pkg

    monkeypatch.setattr(runners_pkg, "BACKENDS", factory.BACKENDS)
    register_backend("accel", Accel)
    assert factory.DESCRIPTIONS["accel"] == "a vendor NPU"
    plans, notes = rows.plan_rows(["fp32", "int8"], backends=["accel"])
    assert [p.label for p in plans] == ["accel/int8"] and plans[0].family == "onnxruntime"
    assert any("accel/fp32: skipped (accel serves ['int8'])" in n for n in notes)
    refs, ref_notes = rows.implicit_references(plans)
    assert [r.label for r in refs] == ["onnxruntime/fp32"] and refs[0].reference_only
    with pytest.raises(ConfigError, match="expected a Runner subclass"):
        register_backend("bad", object)


def test_auto_tries_each_backends_file_in_order_and_says_why_it_skipped(bundle, tmp_path):
    import dataclasses

    from edgepose.errors import EdgePoseError
    from edgepose.runtime import auto_backend, open_bundle
    from edgepose.runtime.bundles import BundleView

    view = open_bundle(bundle[0])
    name, reasons = auto_backend(view)
    assert name == "onnxruntime" and reasons == ["tensorrt: the bundle has no engine file"]
    # a manifest listing no file is refused when read (edgepose.manifest); built in memory, the
    # view still says why each backend cannot run it
    empty = BundleView(view.path, dataclasses.replace(view.manifest, files={}))
    with pytest.raises(EdgePoseError, match="no backend can run bundle .*\n    tensorrt: the bundle has no engine "
                                            "file\n    onnxruntime: the bundle has no onnx file\n    torch: the "
                                            "bundle has no checkpoint file"):
        auto_backend(empty)
