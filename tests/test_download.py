"""Downloading official weights, against a local HTTP server on 127.0.0.1 (no internet)."""

from __future__ import annotations

import http.server
import threading

import pytest
from helpers.data import write_legacy_h5

from mobilenet_np import MobileNet
from mobilenet_np.cli import main
from mobilenet_np.download import official_file_name, official_weights
from mobilenet_np.families.v1 import V1
from mobilenet_np.families.v2 import V2

NAME = "mobilenet_2_5_128_tf.h5"


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` by name; ``cut`` names are sent half, with the full Content-Length."""

    files: dict[str, bytes] = {}
    cut: set[str] = set()

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        name = self.path.rsplit("/", 1)[-1]
        if name not in self.files:
            self.send_error(404)
            return
        body = self.files[name]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if name in self.cut else body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A weights server, an empty cache and an empty home (so ~/.keras is not reused)."""
    model = MobileNet(alpha=0.25, resolution=128, weights=None, seed=2)
    write_legacy_h5(tmp_path / NAME, model.layers, model.params)
    Handler.files = {NAME: (tmp_path / NAME).read_bytes(), "mobilenet_5_0_128_tf.h5": b"junk"}
    Handler.cut = set()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv("MOBILENET_NP_WEIGHTS_URL", f"http://127.0.0.1:{httpd.server_port}/x/")
    monkeypatch.setenv("MOBILENET_NP_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    yield model
    httpd.shutdown()


def test_download_then_imagenet_weights_load_from_cache(server, tmp_path, capsys) -> None:
    assert main(["weights", "download", "--alpha", "0.25", "--resolution", "128"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "cache" / NAME)
    Handler.files = {}  # a second load must not touch the network
    model = MobileNet(alpha=0.25, resolution=128, weights="imagenet")
    assert all((model.params[k] == server.params[k]).all() for k in model.params)


def test_cut_off_transfer_leaves_no_file(server, tmp_path) -> None:
    Handler.cut = {NAME}
    with pytest.raises(ConnectionError, match="transfer cut off|IncompleteRead|Offline"):
        official_weights(V1, V1.config(alpha=0.25, resolution=128))
    cache = tmp_path / "cache"
    assert not cache.exists() or list(cache.iterdir()) == []


def test_server_error_says_how_to_get_the_file_by_hand(server, tmp_path, capsys) -> None:
    assert main(["weights", "download", "--alpha", "1.0", "--resolution", "224"]) == 2
    error = capsys.readouterr().err
    assert "404" in error and "Offline?" in error and "mobilenet_1_0_224_tf.h5" in error


def test_a_served_file_that_is_not_weights_is_not_kept(server, tmp_path) -> None:
    with pytest.raises(ValueError, match="not a readable HDF5"):
        official_weights(V1, V1.config(alpha=0.5, resolution=128))
    assert not (tmp_path / "cache" / "mobilenet_5_0_128_tf.h5").exists()


def test_keras_cache_is_reused(server, tmp_path) -> None:
    keras_dir = tmp_path / "home" / ".keras" / "models"
    keras_dir.mkdir(parents=True)
    (keras_dir / NAME).write_bytes(Handler.files[NAME])
    Handler.files = {}
    assert official_weights(V1, V1.config(alpha=0.25, resolution=128)) == keras_dir / NAME


def test_file_names_follow_keras() -> None:
    def name(family, **options):
        return official_file_name(family, family.config(**options))

    assert name(V1) == "mobilenet_1_0_224_tf.h5"
    assert name(V1, alpha=0.75, resolution=160, include_top=False) == \
        "mobilenet_7_5_160_tf_no_top.h5"
    assert name(V2, alpha=1.4, resolution=96, include_top=False) == \
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.4_96_no_top.h5"
    with pytest.raises(ValueError, match="MobileNet V1: no official ImageNet weights for alpha=0.3"):
        name(V1, alpha=0.3)
    with pytest.raises(ValueError, match="MobileNetV2: no official ImageNet weights for alpha=0.25"):
        name(V2, alpha=0.25)


def test_every_official_v3_file_name_and_checksum() -> None:
    """Keras's names for all 12 published V3 files (minimalistic only at alpha 1.0), each
    with the MD5 Keras publishes for it (keras/src/applications/mobilenet_v3.py)."""
    from mobilenet_np.families.v3 import V3_LARGE, V3_SMALL

    names = {}
    for family in (V3_LARGE, V3_SMALL):
        size = family.name[3:]
        for alpha, minimalistic in ((0.75, False), (1.0, False), (1.0, True)):
            for include_top, suffix in ((True, ""), (False, "_no_top_v2")):
                name = official_file_name(family, family.config(
                    alpha=alpha, minimalistic=minimalistic, include_top=include_top))
                variant = f"{size}{'_minimalistic' if minimalistic else ''}_224_{alpha}"
                assert name == f"weights_mobilenet_v3_{variant}_float{suffix}.h5"
                names[name] = family.weight_files.checksums[name]
        with pytest.raises(ValueError, match="minimalistic MobileNetV3 weights at alpha 1.0"):
            official_file_name(family, family.config(alpha=0.75, minimalistic=True))
    assert len(names) == 12 and len(set(names.values())) == 12
    # V3's one file fits every input size (as Keras loads it): a 160x96 model asks for it too
    assert official_file_name(V3_SMALL, V3_SMALL.config(resolution=(160, 96))) == \
        "weights_mobilenet_v3_small_224_1.0_float.h5"
    assert names["weights_mobilenet_v3_large_224_1.0_float.h5"] == \
        "md5:59e551e166be033d707958cf9e29a6a7"


def test_checksums_are_checked_on_cached_and_downloaded_files(server, tmp_path,
                                                             monkeypatch) -> None:
    """A published checksum is enforced (here V1's file gets one, computed from the file the
    local server serves: the real ones need the real files)."""
    import hashlib

    good = hashlib.md5(Handler.files[NAME]).hexdigest()
    monkeypatch.setitem(V1.weight_files.checksums, NAME, f"md5:{good}")
    config = V1.config(alpha=0.25, resolution=128)
    assert official_weights(V1, config) == tmp_path / "cache" / NAME  # downloaded, checked
    monkeypatch.setitem(V1.weight_files.checksums, NAME, "md5:" + "0" * 32)
    with pytest.raises(ValueError, match=f"md5 {good} is not the published 0{{32}}"):
        official_weights(V1, config)  # now cached: checked again, refused
    (tmp_path / "cache" / NAME).unlink()
    with pytest.raises(ValueError, match="is not the published"):
        official_weights(V1, config)  # downloaded again, refused before it takes its name
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_downloaded_file_for_another_model_is_not_cached(server, tmp_path) -> None:
    """The server answers the alpha 0.5 name with an alpha 0.25 file: refused, not cached."""
    Handler.files["mobilenet_5_0_128_tf.h5"] = Handler.files[NAME]
    with pytest.raises(ValueError, match="holds MobileNet V1 alpha=0.25"):
        official_weights(V1, V1.config(alpha=0.5, resolution=128))
    assert not (tmp_path / "cache" / "mobilenet_5_0_128_tf.h5").exists()
