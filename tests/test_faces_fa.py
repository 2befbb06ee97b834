"""face-alignment backend wiring with random weights (no download is ever attempted), and missing weights."""

from __future__ import annotations

import numpy as np
import pytest

from scorr_cli.errors import MissingWeightsError
from scorr_cli.faces import get_detector
from scorr_cli.faces.weights import FAN_FILE


def test_missing_weights_one_line(tmp_path):
    with pytest.raises(MissingWeightsError) as e:
        get_detector("face-alignment", weights_dir=tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and FAN_FILE in msg and str(tmp_path / "checkpoints") in msg and "--detector dlib" in msg


def test_auto_falls_back_to_dlib(tmp_path):
    assert get_detector("auto", weights_dir=tmp_path).name == "dlib"


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN

    root = tmp_path_factory.mktemp("fa_hub")
    ck = root / "checkpoints"
    ck.mkdir()
    torch.manual_seed(0)
    torch.save(FAN(4).state_dict(), ck / FAN_FILE)
    sd = s3fd().state_dict()
    for k in sd:  # make the random detector confidently say "background" so the test stays fast
        if "mbox_conf" in k:
            sd[k].zero_()
            if k.endswith("bias"):
                sd[k][0] = 10.0
    torch.save(sd, ck / "s3fd-619a316812.pth")
    return root


def test_face_alignment_backend_wiring(random_weights, monkeypatch):
    import torch.hub

    def no_download(*a, **k):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    import face_alignment.utils

    monkeypatch.setattr(face_alignment.utils, "download_url_to_file", no_download)
    before = torch.hub.get_dir()
    det = get_detector("auto", weights_dir=random_weights / "checkpoints")
    assert det.name == "face-alignment"
    assert torch.hub.get_dir() == before  # the hub folder is restored after construction
    img = np.full((120, 160, 3), 127, np.uint8)
    assert det.detect(img) == []
    lm = det.landmarks_for(img, np.array([40.0, 20.0, 120.0, 100.0]))
    assert lm.shape == (68, 2) and np.isfinite(lm).all()
