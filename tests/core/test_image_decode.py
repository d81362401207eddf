"""Image files that decoded to wrong pixels (issue 14, item 4): 16-bit grayscale, float
TIFF, EXIF orientation. Expected pixels come from numpy on the array written to the file,
not from the decoder under test."""
import numpy as np
import pytest
from PIL import Image
from dataset_builders import write_csv_dataset

from edgepose.datasets import load_dataset
from edgepose.datasets.images import read_image_size
from edgepose.errors import DataFormatError, EdgePoseError
from edgepose.preprocess import load_and_preprocess, load_image

ORIENTATION = 0x0112


def gradient16(h=12, w=20):
    return (np.arange(h * w, dtype=np.uint32).reshape(h, w) * 65535 // (h * w - 1)).astype(np.uint16)


def test_16bit_grayscale_png_scales_by_its_range(tmp_path):
    a = gradient16()
    Image.fromarray(a).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode.startswith("I;16")  # really a 16-bit file
    rgb = load_image(tmp_path / "g16.png")
    expected = np.round(a.astype(np.float64) * 255 / 65535).astype(np.uint8)
    assert rgb.dtype == np.uint8 and rgb.shape == (12, 20, 3)
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], expected)
    assert rgb.min() == 0 and rgb.max() == 255 and len(np.unique(rgb)) > 100  # not all white


def test_16bit_and_8bit_of_the_same_scene_agree(tmp_path):
    g8 = np.random.default_rng(0).integers(0, 256, (10, 14), dtype=np.uint8)
    Image.fromarray(g8).save(tmp_path / "g8.png")
    Image.fromarray(g8.astype(np.uint16) * 257).save(tmp_path / "g16.png")  # 257 maps 255 -> 65535
    np.testing.assert_array_equal(load_image(tmp_path / "g16.png"), load_image(tmp_path / "g8.png"))


def test_float_tiff_is_refused_with_the_reason(tmp_path):
    Image.fromarray(np.random.default_rng(1).random((8, 8), dtype=np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(DataFormatError, match="float") as e:
        load_image(tmp_path / "f.tif")
    assert "8-bit or 16-bit" in str(e.value) and e.value.path.endswith("f.tif")
    with pytest.raises(EdgePoseError):
        load_and_preprocess(tmp_path / "f.tif", (4, 4))


def test_32bit_integer_image_beyond_16_bits_is_refused(tmp_path):
    Image.fromarray(np.full((4, 4), 70000, np.int32)).save(tmp_path / "i32.tif")
    with pytest.raises(DataFormatError, match="0..65535"):
        load_image(tmp_path / "i32.tif")


def marker_image(h=6, w=10):
    a = np.zeros((h, w, 3), np.uint8)
    a[0, 0] = (255, 0, 0)      # top-left red
    a[0, w - 1] = (0, 255, 0)  # top-right green
    a[h - 1, 0] = (0, 0, 255)  # bottom-left blue
    return a


# EXIF orientation -> the numpy operation that shows the stored pixels upright
UPRIGHT = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: np.rot90(a, 2),
    4: lambda a: a[::-1],
    5: lambda a: np.transpose(a, (1, 0, 2)),
    6: lambda a: np.rot90(a, -1),          # stored rotated 90 degrees counter-clockwise
    7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


def save_with_orientation(path, a, orientation):
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    Image.fromarray(a).save(path, exif=exif.tobytes())


@pytest.mark.parametrize("orientation", sorted(UPRIGHT))
def test_exif_orientation_is_applied(tmp_path, orientation):
    a = marker_image()
    save_with_orientation(tmp_path / "o.png", a, orientation)
    expected = UPRIGHT[orientation](a)
    np.testing.assert_array_equal(load_image(tmp_path / "o.png"), expected)
    assert read_image_size(tmp_path / "o.png") == (expected.shape[1], expected.shape[0])


def test_exif_orientation_in_a_jpeg(tmp_path):
    a = np.zeros((32, 48, 3), np.uint8)
    a[:8, :8] = 255  # a white block in the stored top-left corner
    save_with_orientation(tmp_path / "o.jpg", a, 6)
    rgb = load_image(tmp_path / "o.jpg")
    assert rgb.shape == (48, 32, 3)
    assert rgb[:8, -8:].mean() > 200 and rgb[:8, :8].mean() < 50  # upright: the block is top-right


def test_dataset_sizes_follow_the_orientation(tmp_path):
    """A CSV dataset whose image is stored sideways: the size the reader records is the
    upright one, the same as the decoded pixels (so K and the pixels agree)."""
    write_csv_dataset(tmp_path, size=(16, 12), header="image,x,y,z,qw,qx,qy,qz,fx,fy,cx,cy,split")
    save_with_orientation(tmp_path / "frames" / "001.png", np.zeros((12, 16, 3), np.uint8), 8)
    ds = load_dataset(tmp_path)
    f = next(f for f in ds.frames if f.image.name == "001.png")
    assert (f.width, f.height) == (12, 16)
    assert load_image(f.image).shape == (16, 12, 3)
