"""The owner's Hub token and models in public mode: a recording stand-in for the Hub client (no network), a real
tiny classifier on disk for loads."""

from types import SimpleNamespace

import huggingface_hub
import pytest
import transformers

from cod.errors import DataError, ModelError, StoreError
from cod.modeling.loading import load_classifier, load_student
from components import export
from components.services import Services, acting_as
from components.state import PageState

OWNER_TOKEN = "hf_OWNER_token_never_for_visitors"
VISITOR_TOKEN = "hf_visitor_own_token"


class RecordingHfApi:
    """Stands in for huggingface_hub.HfApi: records the token of every client made and every call."""

    calls: list[tuple[str, object]] = []

    def __init__(self, token=None, **kwargs):
        self.token = token
        RecordingHfApi.calls.append(("init", token))

    def create_repo(self, repo_id, **kwargs):
        RecordingHfApi.calls.append(("create_repo", self.token))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kwargs):
        RecordingHfApi.calls.append(("upload_folder", self.token))


@pytest.fixture
def hub(monkeypatch):
    RecordingHfApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingHfApi)
    monkeypatch.setenv("HF_TOKEN", OWNER_TOKEN)
    return RecordingHfApi.calls


@pytest.fixture
def finished_run(tmp_path):
    """Services with one finished run of visitor 'anon:v' (a saved model folder) and its in-memory result."""
    services = Services(store_path=tmp_path / "cod.db", artifacts=tmp_path / "app")
    folder = tmp_path / "run"
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "config.json").write_text("{}")
    with acting_as("anon:v"):
        run = services.store().start_run(None, {"method": "kd"}, artifact_dir=folder)
        services.store().finish_run(run.id, "done")
    services.results[str(run.id)] = SimpleNamespace(out_dir=str(folder))
    return services, str(run.id)


def test_a_push_with_an_empty_token_never_reaches_the_hub_client_in_public_mode(hub, finished_run, monkeypatch):
    services, key = finished_run
    monkeypatch.setenv("COD_PUBLIC", "1")
    with acting_as("anon:v"):
        with pytest.raises(StoreError, match="your own Hub token"):
            export.push(services, PageState(), key, "", "visitor/student", "  ", True)
        assert hub == []
        export.push(services, PageState(), key, "", "visitor/student", VISITOR_TOKEN, True)
    assert hub and all(token == VISITOR_TOKEN for _, token in hub)
    hub.clear()
    with acting_as("anon:someone-else"), pytest.raises(StoreError, match="No run"):  # nor another visitor's run
        export.push(services, PageState(), key, "", "thief/student", VISITOR_TOKEN, True)
    assert hub == []


def test_locally_an_empty_token_field_still_uses_the_login(hub, finished_run, monkeypatch):
    services, key = finished_run
    monkeypatch.setenv("COD_PUBLIC", "0")
    with acting_as("anon:v"):
        export.push(services, PageState(), key, "", "me/student", "", True)
    assert ("init", None) in hub  # None: huggingface_hub reads the person's own HF_TOKEN / login


@pytest.fixture
def loads(monkeypatch):
    """The keyword arguments of every from_pretrained call (the real ones still run)."""
    seen: list[tuple[str, dict]] = []
    for cls in (transformers.AutoConfig, transformers.AutoTokenizer, transformers.AutoModelForSequenceClassification):
        real = cls.from_pretrained.__func__

        def record(klass, *args, _real=real, _name=cls.__name__, **kwargs):
            seen.append((_name, kwargs))
            return _real(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(record))
    return seen


def test_public_model_loads_never_use_the_owners_token(loads, tiny_classifier, monkeypatch):
    monkeypatch.setenv("COD_PUBLIC", "1")
    monkeypatch.setenv("COD_ALLOWED_MODELS", str(tiny_classifier))
    load_classifier(str(tiny_classifier))
    load_student(str(tiny_classifier), ["negative", "positive"])
    assert loads and all(kwargs.get("token") is False for _, kwargs in loads)
    monkeypatch.setenv("COD_ALLOW_OWNER_HF_TOKEN", "1")  # the owner may allow it (their own private models)
    loads.clear()
    load_classifier(str(tiny_classifier))
    assert all("token" not in kwargs for _, kwargs in loads)


def test_public_mode_loads_only_allowed_models_and_says_nothing_of_server_folders(loads, tiny_classifier, monkeypatch):
    monkeypatch.setenv("COD_PUBLIC", "1")
    messages = []
    for name in (str(tiny_classifier), "/etc", "/no/such/folder", "org/huge-model"):
        with pytest.raises(ModelError) as err:
            load_classifier(name)
        messages.append(str(err.value).replace(repr(name), "NAME"))
    assert len(set(messages)) == 1 and "'demo'" in messages[0]
    assert loads == []  # refused before anything is read


def test_the_parameter_cap_is_read_from_the_config_before_any_weights(loads, tiny_classifier, monkeypatch):
    monkeypatch.setenv("COD_PUBLIC", "1")
    monkeypatch.setenv("COD_ALLOWED_MODELS", str(tiny_classifier))
    monkeypatch.setenv("COD_MAX_MODEL_PARAMS", "1000")
    for load in (load_classifier, lambda name: load_student(name, ["a", "b"])):
        with pytest.raises(ModelError, match="parameters, above this public app's limit"):
            load(str(tiny_classifier))
    assert [name for name, _ in loads] == ["AutoConfig", "AutoConfig"]


def test_public_hub_dataset_reads_never_use_the_owners_token(monkeypatch):
    import datasets

    from cod.data.readers import load

    seen = []

    def record(*args, **kwargs):
        seen.append(kwargs)
        raise OSError("no network in tests")

    monkeypatch.setattr(datasets, "load_dataset", record)
    monkeypatch.setattr(datasets, "load_dataset_builder", record)  # the size check reads the card first
    monkeypatch.setenv("HF_TOKEN", OWNER_TOKEN)
    monkeypatch.setenv("COD_PUBLIC", "1")
    with pytest.raises(DataError):
        load("owner/private-dataset")
    monkeypatch.setenv("COD_PUBLIC", "0")
    with pytest.raises(DataError):
        load("owner/private-dataset")
    assert seen[0].get("token") is False and "token" not in seen[1]


def test_the_demo_teacher_loads_in_public_mode(tiny_classifier, monkeypatch):
    """'demo' resolves to a folder on the server: that folder must not then be refused as a typed path."""
    from cod.modeling import loading

    monkeypatch.setenv("COD_PUBLIC", "1")
    monkeypatch.delenv("COD_ALLOWED_MODELS", raising=False)
    monkeypatch.setattr(loading, "resolve_teacher_name", lambda name: str(tiny_classifier) if name == "demo" else name)
    loading.clear_teacher_cache()
    assert loading.load_teacher("demo").num_labels == 2
    with pytest.raises(ModelError, match="only these models"):
        loading.load_teacher(str(tiny_classifier))
    loading.clear_teacher_cache()
