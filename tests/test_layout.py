"""The package by concern: `import l2decay` loads the kernels, the rules and the optimizers only;
the conversions and the experiment load on first use, under their old names too."""
import json
import subprocess
import sys


def run(code):
    return json.loads(subprocess.check_output([sys.executable, "-c", code], text=True))


def test_import_l2decay_loads_the_library_only():
    loaded = run("import sys, json, l2decay; print(json.dumps(sorted(sys.modules)))")
    assert "l2decay.optim" in loaded and "l2decay.rules" in loaded and "l2decay._kernels" in loaded
    later = ("l2decay.experiment", "l2decay.convert", "l2decay.torch", "l2decay.bench", "l2decay.cli", "torch",
             "matplotlib", "tqdm")
    assert [m for m in loaded if m.startswith(later)] == []


def test_the_experiment_and_the_conversions_load_on_first_use():
    names = run("import json, l2decay; print(json.dumps([l2decay.MLP.__module__, l2decay.train.__module__, "
                "l2decay.Config.__module__, l2decay.convert.__name__, l2decay.convert.from_torch.__module__]))")
    assert names == ["l2decay.experiment.mlp", "l2decay.experiment.driver", "l2decay.experiment.driver",
                     "l2decay.convert", "l2decay.convert._torch"]
    assert run("import json, l2decay; print(json.dumps(hasattr(l2decay, 'no_such_name')))") is False
