"""Photo crops on real images: group photos, --face selection, sidecars, embeddings, driving window."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from scorr_cli.faces import CropConfig, FaceEmbedder, crop_image_file, crop_source_image, driving_crop_window, get_detector


@pytest.fixture(scope="module")
def det():
    return get_detector("dlib")


def _many(root):
    with open(root / "MANIFEST.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [root / r["file"] for r in rows if r["faces_visible"] == "many" and r["kind"] == "source"]


def test_group_photos_all_and_largest(faces_media, det, tmp_path):
    from scorr_cli.media import read_image

    photos = _many(faces_media)
    assert photos
    found = {}
    for p in photos:
        faces = det.detect(read_image(p))
        found[p.name] = len(faces)
        if not faces:
            continue
        res = crop_image_file(p, tmp_path / "all", det, CropConfig(), face="all")
        assert len(res.crops) == len(res.sidecars) == len(faces) == res.detections
        for c in res.crops:
            assert read_image(c).shape == (256, 256, 3)
        res = crop_image_file(p, tmp_path / "largest", det, CropConfig(), face="largest")
        assert len(res.crops) == 1
        side = json.loads(res.sidecars[0].read_text())
        x0, y0, x1, y1 = side["box"]
        assert (x1 - x0) * (y1 - y0) == pytest.approx(max(f.area for f in faces), rel=1e-3)
        assert np.asarray(side["matrix"]).shape == (2, 3) and side["crop_size"] == 256
    print("faces per group photo:", found)
    assert sum(n > 1 for n in found.values()) >= len(photos) // 2


def test_crop_source_image_and_embeddings(faces_media, det):
    from scorr_cli.media import read_image

    a = read_image(faces_media / "source/sadtalker_happy.png")
    b = read_image(faces_media / "source/sadtalker_sad.png")
    c = read_image(faces_media / "source/facerecognition_obama-1080p.jpg")
    crop, t = crop_source_image(c, det, size=256, align=True)
    assert crop.shape == (256, 256, 3) and t.source_size == (c.shape[1], c.shape[0])
    emb = FaceEmbedder()
    ea, eb, ec = (emb.embed(x, det.detect(x)[0]) for x in (a, b, c))
    assert ea.shape == (128,)
    assert emb.distance(ea, eb) < 0.6 < emb.distance(ea, ec)  # same woman vs Obama


def test_driving_crop_window(faces_media, det):
    src = faces_media / "driving/rerender_pexels-cottonbro-studio-6649832-960x506-25fps.mp4"
    if not src.is_file():
        pytest.skip("driving clip missing")
    t = driving_crop_window(src, det, size=256, every=15)
    w, h = t.source_size
    assert (w, h) == (960, 506)
    corners = np.array([[0, 0], [256, 256]], float)
    inv = np.linalg.inv(np.vstack([t.matrix, [0, 0, 1]]))
    (x0, y0), (x1, y1) = (inv[:2, :2] @ corners.T).T + inv[:2, 2]
    assert -1e-6 <= x0 < x1 <= w + 1e-6 and -1e-6 <= y0 < y1 <= h + 1e-6  # clamped inside the frame, square
    assert (x1 - x0) == pytest.approx(y1 - y0)


def test_cropper_detects_fast_first_and_still_finds_small_faces(faces_media):
    """animate's face detector looks at the frame first without upsampling (~4x faster for the large faces of
    portraits and talking-head clips) and upsamples only when that finds nothing: a 100-px portrait in a
    480-px frame is missed at upsample 0 and found all the same. Landmarks come on demand (dlib's 100 MB shape
    model is not read to crop)."""
    import cv2

    from scorr_cli.faces.detectors import DlibDetector
    from scorr_cli.media import read_image
    from scorr_cli.pipeline.faces import FaceCropper

    portrait = read_image(faces_media / "source" / "liveportrait_s42.jpg")
    frame = np.zeros((480, 480, 3), np.uint8)
    frame[100:200, 100:200] = cv2.resize(portrait, (100, 100), interpolation=cv2.INTER_AREA)
    assert DlibDetector(upsample=0, landmarks=False).detect(frame) == []
    cropper = FaceCropper(detector="dlib")
    (face,) = cropper.detector.detect(frame)
    assert 90 <= face.box[0] <= 140 and face.landmarks68 is None
    assert cropper.detector._shape_model is None  # boxes only so far
    points = cropper.landmarks(cv2.resize(portrait, (256, 256), interpolation=cv2.INTER_AREA))
    assert points.shape == (68, 2) and cropper.detector._shape_model is not None


def test_driving_scan_detects_at_the_face_scale(faces_media, det, monkeypatch):
    """After the first face, the driving window's scan detects on frames scaled so the face is ~120 px
    (3-5x faster on 512² clips); the window stays within dlib's scale steps of the full-size scan. A scan
    that never shrinks the frames fails the size check; one that forgets to scale the boxes back
    gives a window off by the scale factor (~2x)."""
    import scorr_cli.faces.bestframe as bf
    from scorr_cli.media import iter_video_frames

    clip = faces_media / "driving" / "liveportrait_d12.mp4"
    if not clip.is_file():
        pytest.skip("driving clip missing")
    frames = [f for i, f in zip(range(60), iter_video_frames(clip))]
    seen = []

    class Spy:
        def detect(self, image):
            seen.append(image.shape[:2])
            return det.detect(image)

    scaled = bf.driving_crop_window(frames, Spy(), size=256, every=5)
    assert seen[0] == (512, 512) and all(max(s) < 350 for s in seen[1:]), seen
    monkeypatch.setattr(bf, "SCAN_FACE_PX", 10**6)  # never shrinks: the full-size scan
    full = bf.driving_crop_window(frames, det, size=256, every=5)

    def corners(t):
        inv = np.linalg.inv(np.vstack([t.matrix, [0, 0, 1]]))
        return np.array([inv[:2, 2], inv[:2, :2] @ [256, 256] + inv[:2, 2]]).ravel()

    a, b = corners(full), corners(scaled)
    assert np.abs(a - b).max() < 0.1 * (a[2] - a[0]), (a, b)
