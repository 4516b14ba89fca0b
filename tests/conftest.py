from __future__ import annotations

import os

import pytest

# Before anything imports torch or Qt: no hub access, passive OpenMP threads, headless Qt.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import app_helpers  # noqa: E402  (after the environment above)

# Autouse for every test: settings and output folder in tmp; fail a test that leaves a QThread
# running. make_window builds the real main window around a FakeEngine.
isolated_settings = app_helpers.isolated_settings
no_leaked_qthreads = app_helpers.no_leaked_qthreads
make_window = app_helpers.make_window

def _tiny(tmp_path_factory, name: str, builder_name: str):
    import tiny_models

    return getattr(tiny_models, builder_name)(tmp_path_factory.mktemp(name) / name)


def _single_file(tmp_path_factory, folder, name: str):
    import tiny_models

    return tiny_models.save_ldm_single_file(folder, tmp_path_factory.mktemp(name)
                                            / f"{folder.name}.safetensors")


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory):
    """A 4-channel SD 1.x-style diffusers folder (64 px)."""
    return _tiny(tmp_path_factory, "tiny_sd", "build_tiny_sd")


@pytest.fixture(scope="session")
def tiny_sd_inpaint(tmp_path_factory):
    """A 9-channel SD inpainting diffusers folder (64 px)."""
    return _tiny(tmp_path_factory, "tiny_sd_inpaint", "build_tiny_sd_inpaint")


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory):
    """An SDXL-layout diffusers folder with two text encoders (64 px)."""
    return _tiny(tmp_path_factory, "tiny_sdxl", "build_tiny_sdxl")


@pytest.fixture(scope="session")
def tiny_builtin(tmp_path_factory):
    """Shaped like models/builtin: 9-channel UNet, BERT text encoder, latent_rgb.json."""
    return _tiny(tmp_path_factory, "tiny_builtin", "build_tiny_builtin")


@pytest.fixture(scope="session")
def tiny_sd_single_file(tmp_path_factory, tiny_sd):
    """The tiny SD saved as one .safetensors file in the original (LDM) key layout."""
    return _single_file(tmp_path_factory, tiny_sd, "tiny_single")


@pytest.fixture(scope="session")
def tiny_sd2(tmp_path_factory):
    """An SD 2.x-style diffusers folder (linear projections, OpenCLIP-style encoder; 64 px)."""
    return _tiny(tmp_path_factory, "tiny_sd2", "build_tiny_sd2")


@pytest.fixture(scope="session")
def tiny_sd2_single_file(tmp_path_factory, tiny_sd2):
    """The tiny SD 2.x as one .safetensors file in the original (LDM, OpenCLIP) key layout."""
    return _single_file(tmp_path_factory, tiny_sd2, "tiny_single_2")


@pytest.fixture(scope="session")
def tiny_sdxl_single_file(tmp_path_factory, tiny_sdxl):
    """The tiny SDXL as one .safetensors file in the original (SGM) key layout."""
    return _single_file(tmp_path_factory, tiny_sdxl, "tiny_single_xl")


_ENGINES: dict[str, object] = {}


@pytest.fixture
def engine_for(request):
    """engine_for("tiny_sd") -> an Engine with that tiny model loaded, shared by the whole session
    (loading is the slow part); previews after every step so step numbers can be checked."""

    def get(name: str):
        if name not in _ENGINES:
            from desktop_app.engine import Engine

            engine = Engine(device="cpu")
            engine.preview_max_per_second = 0
            engine.load(request.getfixturevalue(name))
            _ENGINES[name] = engine
        return _ENGINES[name]

    return get
