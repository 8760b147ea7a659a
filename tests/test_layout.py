"""The package by concern: `import l2decay` loads the kernels, the rules and the optimizers only;
the conversions and the experiment load on first use, under their old names too; ml_dtypes, slow
to load, is not imported, and its bfloat16 arrays are known once their user has imported it."""
import json
import subprocess
import sys


def run(code):
    return json.loads(subprocess.check_output([sys.executable, "-c", code], text=True))


def test_import_l2decay_loads_the_library_only():
    loaded = run("import sys, json, l2decay; print(json.dumps(sorted(sys.modules)))")
    assert "l2decay.optim" in loaded and "l2decay.rules" in loaded and "l2decay._kernels" in loaded
    later = ("l2decay.experiment", "l2decay.convert", "l2decay.torch", "l2decay.bench", "l2decay.cli", "torch",
             "matplotlib", "tqdm", "ml_dtypes")
    assert [m for m in loaded if m.startswith(later)] == []


def test_the_experiment_and_the_conversions_load_on_first_use():
    names = run("import json, l2decay; print(json.dumps([l2decay.MLP.__module__, l2decay.train.__module__, "
                "l2decay.Config.__module__, l2decay.convert.__name__, l2decay.convert.from_torch.__module__]))")
    assert names == ["l2decay.experiment.mlp", "l2decay.experiment.driver", "l2decay.experiment.driver",
                     "l2decay.convert", "l2decay.convert._torch"]
    assert run("import json, l2decay; print(json.dumps(hasattr(l2decay, 'no_such_name')))") is False


def test_bfloat16_arrays_made_after_import_l2decay_are_known():
    code = """
import json, numpy as np, l2decay
import ml_dtypes
w = np.ones(1000, ml_dtypes.bfloat16)
opt = l2decay.SGD([w], lr=0.5, reg=l2decay.Decoupled(0.5), rounding="nearest")
opt.step([np.zeros_like(w)])
l2decay.decay_step(np.ones(4, np.float32), np.ones(4, np.float32), lr=0.0, decay=0.5)
try:
    l2decay.sgd_step([w.view(np.uint16)], [w.view(np.uint16)], lr=0.1)
    refused = None
except TypeError as exc:
    refused = str(exc)
print(json.dumps([float(w[0]), str(opt.state[0].get("compensation", "none")), refused]))
"""
    value, _, refused = run(code)
    assert value == 0.75 and "params[0] must have dtype float32, float64, float16 or bfloat16" in refused
