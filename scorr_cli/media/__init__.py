"""Media I/O for scorr: probe and stream videos, write MP4/GIF/PNG frames, read and write images.

Everything goes through the ffmpeg bundled with imageio-ffmpeg; frames are HxWx3 uint8 RGB arrays;
bad inputs raise ``scorr_cli.errors.InputError`` with one line naming the file.
"""

from scorr_cli.media.image import read_image, write_image
from scorr_cli.media.rates import parse_fps, snap_fps
from scorr_cli.media.sniff import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    is_image_file,
    is_video_file,
    require_image,
    require_video,
)
from scorr_cli.media.video import VideoInfo, audio_sync_offset, count_frames, iter_video_frames, probe_video
from scorr_cli.media.writers import (
    FrameFolderWriter,
    GifWriter,
    VideoWriter,
    Writer,
    open_writer,
    writer_format,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "FrameFolderWriter",
    "GifWriter",
    "VideoInfo",
    "VideoWriter",
    "Writer",
    "audio_sync_offset",
    "count_frames",
    "is_image_file",
    "is_video_file",
    "iter_video_frames",
    "open_writer",
    "parse_fps",
    "probe_video",
    "read_image",
    "require_image",
    "require_video",
    "snap_fps",
    "write_image",
    "writer_format",
]
