"""BentoML 0.x user code, renamed ``bentoml`` -> ``bento_nb``, runs: each example below is
written as its user wrote it (BentoML 0.13 docs and gallery, 0.7 for the old import
paths; data swapped for iris), packed and saved in one subprocess run from the example's
folder, then loaded and called in a FRESH subprocess from another folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

IRIS_013 = '''
import pandas as pd

from bento_nb import env, artifacts, api, BentoService
from bento_nb.adapters import DataframeInput
from bento_nb.frameworks.sklearn import SklearnModelArtifact

@env(infer_pip_packages=True)
@artifacts([SklearnModelArtifact('model')])
class IrisClassifier(BentoService):
    """
    A minimum prediction service exposing a Scikit-learn model
    """

    @api(input=DataframeInput(), batch=True)
    def predict(self, df: pd.DataFrame):
        """
        An inference API named `predict` with Dataframe input adapter, which codifies
        how HTTP requests or CSV files are converted to a pandas Dataframe object as the
        inference API function input
        """
        return self.artifacts.model.predict(df)
'''

IRIS_07 = '''
import bento_nb
from bento_nb import env, artifacts, api, BentoService
from bento_nb.handlers import DataframeHandler
from bento_nb.artifact import SklearnModelArtifact

@env(pip_dependencies=["scikit-learn"])
@artifacts([SklearnModelArtifact('model')])
class IrisClassifier(BentoService):

    @api(DataframeHandler)
    def predict(self, df):
        return self.artifacts.model.predict(df)
'''

JSON_PICKLE = '''
from typing import List

from bento_nb import env, artifacts, api, BentoService
from bento_nb.adapters import JsonInput
from bento_nb.service.artifacts.common import PickleArtifact
from bento_nb.types import JsonSerializable
from bento_nb.utils import cached_property

@env(auto_pip_dependencies=True)
@artifacts([PickleArtifact('model')])
class IrisJson(BentoService):

    @cached_property
    def classes(self):
        return ["setosa", "versicolor", "virginica"]

    @api(input=JsonInput(), batch=True)
    def predict(self, parsed_json_list: List[JsonSerializable]):
        rows = [p["features"] for p in parsed_json_list]
        return [self.classes[i] for i in self.artifacts.model.predict(rows)]
'''

# bentoml/gallery@0.13-LTS scikit-learn/sentiment-analysis/sentiment_analysis_service.py
SENTIMENT = '''
import pandas as pd
import bento_nb
from bento_nb.frameworks.sklearn import SklearnModelArtifact
from bento_nb.service.artifacts.common import PickleArtifact
from bento_nb.handlers import DataframeHandler
from bento_nb.adapters import DataframeInput

@bento_nb.artifacts([PickleArtifact('model')])
@bento_nb.env(pip_packages=["scikit-learn", "pandas"])
class SKSentimentAnalysis(bento_nb.BentoService):

    @bento_nb.api(input=DataframeInput(), batch=True)
    def predict(self, df):
        """
        predict expects pandas.Series as input
        """
        series = df.iloc[0,:]
        return self.artifacts.model.predict(series)
'''

# bentoml/gallery@0.13-LTS scikit-learn/titanic-multiple-models-jsoninput (its @env)
TITANIC_CONDA = '''
import bento_nb
from bento_nb.adapters import JsonInput
from bento_nb.artifact import SklearnModelArtifact


@bento_nb.artifacts([SklearnModelArtifact("xgb"), SklearnModelArtifact("lgb")])
@bento_nb.env(
    conda_channels=["conda-forge"],
    conda_dependencies=["lightgbm==2.3.*", "pandas==1.0.*", "xgboost==1.2.*"],
)
class TitanicSurvivalPredictionService(bento_nb.BentoService):
    @bento_nb.api(input=JsonInput())
    def predict(self, datain):
        return datain
'''

HELPER_LIB = '''
def to_rows(df):
    return df.to_numpy() * 1.0
'''

WITH_HELPER = '''
from bento_nb import env, artifacts, api, BentoService
from bento_nb.adapters import DataframeInput
from bento_nb.service.artifacts.pickle import PickleArtifact
from my_lib import to_rows

@env(infer_pip_packages=True)
@artifacts([PickleArtifact('model')])
class IrisHelper(BentoService):
    @api(input=DataframeInput(), batch=True)
    def predict(self, df):
        return self.artifacts.model.predict(to_rows(df))
'''

PACK = '''
import sys
from sklearn import datasets, svm
from {module} import {cls}

X, y = datasets.load_iris(return_X_y=True)
svc = {cls}()
svc.pack('model', svm.SVC(gamma='scale').fit(X, y), metadata={{"dataset": "iris"}})
print(svc.{save})
'''


def run(code: str, cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the example's folder only as its cwd
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def write_example(folder: Path, module: str, source: str, **extra: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(source)
    for name, text in extra.items():
        (folder / f"{name}.py").write_text(text)
    return folder


LOAD_AND_PREDICT = '''
import json, bento_nb, pandas as pd
svc = bento_nb.{loader}({where!r})
api = svc.apis["predict"]
print(json.dumps({{"result": [str(v) for v in api({data})],
                  "metadata": svc.artifact_metadata}}))
'''


@pytest.mark.parametrize("module,cls,source,data,expected", [
    ("iris_classifier", "IrisClassifier", IRIS_013, "pd.DataFrame([[5.1, 3.5, 1.4, 0.2]])", ["0"]),
    ("iris_classifier", "IrisClassifier", IRIS_07, "pd.DataFrame([[6.7, 3.0, 5.2, 2.3]])", ["2"]),
    ("iris_json", "IrisJson", JSON_PICKLE, "{'features': [5.1, 3.5, 1.4, 0.2]}", ["setosa"]),
], ids=["0.13-quickstart", "0.7-handlers-artifact", "json-pickle-types-utils"])
def test_a_0x_example_packs_saves_and_predicts_in_a_fresh_process(tmp_path, module, cls, source,
                                                                    data, expected):
    folder = write_example(tmp_path / "project", module, source)
    path = run(PACK.format(module=module, cls=cls, save="save()"), folder)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = json.loads(run(LOAD_AND_PREDICT.format(loader="load", where=f"{cls}:latest",
                                                 data=data), elsewhere))
    assert out == {"result": expected, "metadata": {"model": {"dataset": "iris"}}}
    assert Path(path).is_dir()


def test_the_gallery_sentiment_service_runs_renamed(tmp_path):
    folder = write_example(tmp_path / "project", "sentiment_analysis_service", SENTIMENT)
    run('''
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sentiment_analysis_service import SKSentimentAnalysis

        texts = ["i love it", "great movie", "so good", "i hate it", "awful movie", "so bad"]
        model = Pipeline([("bow", CountVectorizer()), ("lr", LogisticRegression())])
        svc = SKSentimentAnalysis()
        svc.pack("model", model.fit(texts, [4, 4, 4, 0, 0, 0]))
        svc.save()
    ''', folder)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = json.loads(run(LOAD_AND_PREDICT.format(
        loader="load", where="SKSentimentAnalysis",
        data="pd.DataFrame([['what a great movie', 'an awful movie']])"), elsewhere))
    assert out["result"] == ["4", "0"]


def test_the_gallery_conda_environment_is_refused_naming_the_option(tmp_path):
    folder = write_example(tmp_path / "project", "titanic", TITANIC_CONDA)
    done = subprocess.run([sys.executable, "-c", "import titanic"], cwd=folder,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == (
        "bento_nb.errors.PackError: conda_channels is not supported: bento_nb images use pip, "
        "not conda; drop it")


def test_save_to_dir_and_load_from_dir_round_trip(tmp_path):
    folder = write_example(tmp_path / "project", "iris_classifier", IRIS_013)
    target = tmp_path / "saved" / "iris"
    printed = run(PACK.format(module="iris_classifier", cls="IrisClassifier",
                              save=f"save_to_dir({str(target)!r})"), folder)
    assert printed == str(target) and (target / "bento.yml").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for loader in ("load_from_dir", "saved_bundle.load"):
        out = json.loads(run(LOAD_AND_PREDICT.format(
            loader=loader, where=str(target), data="pd.DataFrame([[5.1, 3.5, 1.4, 0.2]])"),
            elsewhere))
        assert out["result"] == ["0"]
    # not in the store: a folder of its own
    assert run("import bento_nb; print(len(bento_nb.list_bundles()))", elsewhere) == "0"


def test_a_helper_module_next_to_the_service_travels_in_the_bundle(tmp_path):
    folder = write_example(tmp_path / "project", "iris_helper", WITH_HELPER, my_lib=HELPER_LIB)
    run(PACK.format(module="iris_helper", cls="IrisHelper", save="save()"), folder)
    elsewhere = tmp_path / "elsewhere"  # no my_lib.py here, nor on sys.path
    elsewhere.mkdir()
    out = json.loads(run(LOAD_AND_PREDICT.format(
        loader="load", where="IrisHelper", data="pd.DataFrame([[5.1, 3.5, 1.4, 0.2]])"),
        elsewhere))
    assert out["result"] == ["0"]


def test_save_of_the_package_root_saves_to_the_store(tmp_path):
    folder = write_example(tmp_path / "project", "iris_classifier", IRIS_013)
    path = run(PACK.format(module="iris_classifier", cls="IrisClassifier",
                           save="save() if False else __import__('bento_nb').save(svc)"), folder)
    assert Path(path).parent.name == "IrisClassifier"


# -- @env --------------------------------------------------------------------------------


def _service_with_env(**options):
    from bento_nb import BentoService, api, env
    from bento_nb.adapters import JsonInput

    @env(**options)
    class EnvService(BentoService):
        @api(input=JsonInput())
        def predict(self, value):
            return value

    return EnvService()


@pytest.mark.parametrize("option,value", [
    ("conda_dependencies", ["faiss"]), ("conda_channels", ["conda-forge"]),
    ("conda_env_yml_file", "environment.yml"), ("conda_override_channels", True),
    ("pip_index_url", "https://example.org/simple"), ("pip_extra_index_url", "https://x/simple"),
    ("pip_trusted_host", "example.org"), ("zipimport_archives", ["lib.zip"]),
    ("not_an_option", 1),
])
def test_env_options_not_honoured_are_refused_by_name(option, value):
    from bento_nb.errors import PackError

    with pytest.raises(PackError, match=option) as caught:
        _service_with_env(**{option: value})
    assert "\n" not in caught.value.message


def test_empty_conda_options_as_0x_defaults_are_accepted():
    _service_with_env(conda_channels=None, conda_dependencies=[], conda_override_channels=False)


def test_env_docker_base_image_and_setup_sh_shape_the_dockerfile(tmp_path):
    from bento_nb.containerize.context import write_context

    script = tmp_path / "setup.sh"
    script.write_text("apt-get update && apt-get install -y libgomp1\n")
    svc = _service_with_env(docker_base_image="python:3.11-bookworm", setup_sh=str(script))
    bundle = svc.save_bundle()
    dockerfile = (bundle.path / "Dockerfile").read_text()
    assert "FROM python:3.11-bookworm\n" in dockerfile
    assert dockerfile.index("RUN sh /tmp/setup.sh") < dockerfile.index("pip install -r")
    assert (bundle.path / "setup.sh").read_text() == script.read_text()
    bundle.verify()
    context = write_context(bundle, out_dir=tmp_path / "ctx")  # containerize keeps both
    built = (context / "Dockerfile").read_text()
    assert "FROM python:3.11-bookworm\n" in built and (context / "bundle" / "setup.sh").is_file()
    # the script itself, as 0.13 also takes it
    inline = _service_with_env(setup_sh="#!/bin/sh\necho hi\n").save_bundle()
    assert (inline.path / "setup.sh").read_text() == "#!/bin/sh\necho hi\n"


def test_env_requirements_txt_pins_win_over_inferred_ones(tmp_path):
    import numpy

    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# pinned by hand\nnumpy==1.0.0  # old on purpose\nrequests>=2\n")
    svc = _service_with_env(requirements_txt_file=str(requirements), pip_packages=["pyyaml"])
    pins = svc.save_bundle().manifest["requirements"]
    assert "numpy==1.0.0" in pins and f"numpy=={numpy.__version__}" not in pins
    assert "requests>=2" in pins and "pyyaml" in pins
    requirements.write_text("--index-url https://example.org/simple\nnumpy\n")
    from bento_nb.errors import PackError

    with pytest.raises(PackError, match="--index-url"):
        _service_with_env(requirements_txt_file=str(requirements))


def test_env_old_option_names_are_honoured():
    svc = _service_with_env(auto_pip_dependencies=False, pip_dependencies=["requests>=2"])
    assert svc.save_bundle().manifest["requirements"] == ["requests>=2"]  # nothing inferred
    inferred = _service_with_env(pip_dependencies=["requests>=2"]).save_bundle()
    assert "requests>=2" in inferred.manifest["requirements"]
    assert any(r.startswith("numpy==") for r in inferred.manifest["requirements"])


def test_save_to_dir_takes_a_version(tmp_path):
    import bento_nb

    path = _service_with_env().save_to_dir(tmp_path / "v", version="1.2.0")
    loaded = bento_nb.load_from_dir(path)
    assert loaded.version == "1.2.0" and loaded.predict({"a": 1}) == {"a": 1}
    assert bento_nb.list_bundles() == []


def test_web_static_content_travels_with_save_to_dir(tmp_path, monkeypatch):
    """0.x's ``@web_static_content('./ui')``: the folder is in the saved folder and the
    loaded service serves it (see tests/server/test_static.py for the server side)."""
    import bento_nb
    from bento_nb import BentoService, api
    from bento_nb.adapters import JsonInput

    (tmp_path / "ui").mkdir()
    (tmp_path / "ui" / "index.html").write_text("<h1>hi</h1>")
    monkeypatch.chdir(tmp_path)

    @bento_nb.web_static_content("./ui")
    class Ui(BentoService):
        @api(input=JsonInput())
        def predict(self, value):
            return value

    path = Ui().save_to_dir(tmp_path / "saved")
    (tmp_path / "ui" / "index.html").unlink()
    loaded = bento_nb.load_from_dir(path)
    assert (loaded.web_static_folder() / "index.html").read_text() == "<h1>hi</h1>"


# -- import paths ------------------------------------------------------------------------


def test_old_names_that_have_no_bento_nb_counterpart_say_so():
    with pytest.raises(ImportError, match="CoreMLModelArtifact"):
        from bento_nb.artifact import CoreMLModelArtifact  # noqa: F401
    with pytest.raises(ImportError, match="InferenceTask"):
        from bento_nb.types import InferenceTask  # noqa: F401


# -- dev server --------------------------------------------------------------------------


def test_start_dev_server_serves_the_service_until_stopped(port):
    import os

    from bento_nb.server import running_servers

    svc = _service_with_env()
    url = svc.start_dev_server(port=port)
    try:
        request = urllib.request.Request(f"{url}/predict", data=b'{"a": 1}',
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read()) == {"a": 1}
        # in this process (the kernel's, in a notebook): a server thread, as bento_nb.serve
        with urllib.request.urlopen(f"{url}/metadata", timeout=10) as response:
            assert json.loads(response.read())["pid"] == os.getpid()
        assert [h.port for h in running_servers()] == [port]
        assert bento_nb_store_is_empty()  # served as it is: nothing saved
        from bento_nb.errors import UsageError

        with pytest.raises(UsageError, match="stop_dev_server"):
            svc.start_dev_server(port=port)
    finally:
        svc.stop_dev_server()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/healthz", timeout=2)
    assert running_servers() == []
    svc.stop_dev_server()  # twice: nothing to do


def bento_nb_store_is_empty() -> bool:
    import bento_nb

    return bento_nb.list_bundles() == []


def test_start_dev_server_refuses_options_it_would_ignore(port):
    from bento_nb.errors import UsageError

    svc = _service_with_env()
    for options, message in [({"enable_ngrok": True}, "enable_ngrok"), ({"debug": True}, "debug"),
                             ({"colour": "red"}, "unknown option")]:
        with pytest.raises(UsageError, match=message):
            svc.start_dev_server(port=port, **options)
    assert svc._dev_server is None


def test_pack_metadata_is_shown_in_the_servers_metadata(serve_model, iris_clf):
    """``svc.pack(name, obj, metadata={...})`` (BentoML 0.x) is in ``GET /metadata``."""
    from bento_nb import BentoService, api, artifacts
    from bento_nb.adapters import DataframeInput
    from bento_nb.frameworks.sklearn import SklearnModelArtifact

    @artifacts([SklearnModelArtifact("model")])
    class WithMetadata(BentoService):
        @api(input=DataframeInput(), batch=True)
        def predict(self, df):
            return self.artifacts.model.predict(df)

    svc = WithMetadata()
    svc.pack("model", iris_clf, metadata={"dataset": "iris", "accuracy": 0.97})
    import bento_nb

    handle = serve_model(bento_nb.load(svc.save()))
    with urllib.request.urlopen(handle.url + "/metadata", timeout=10) as response:
        body = json.loads(response.read())
    assert body["artifacts"]["model"] == {"dataset": "iris", "accuracy": 0.97}
