"""`pydqn evaluate`: raw game scores of a checkpoint, and the video of its episodes."""

import pytest

from pydqn.cli import main
from pydqn.training import train
from pydqn.training.config import build_config


@pytest.fixture(scope="module")
def pong_run(tmp_path_factory):
    """A Pong run a few updates old: the policy is poor, its episodes are real games."""
    run = tmp_path_factory.mktemp("pong")
    train(
        build_config(
            "atari",
            {
                "env_id": "ALE/Pong-v5",
                "total_steps": 96,
                "num_envs": 2,
                "learning_starts": 64,
                "buffer_size": 128,
                "device": "cpu",
                "checkpoint_interval": 96,
                "log_interval": 96,
            },
        ),
        run,
    )
    return run


# Reading the video back: imageio-ffmpeg's frame reader leaves closing its pipe to the GC.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_evaluate_writes_every_frame_of_the_episodes_as_video(pong_run, tmp_path, capsys):
    imageio = pytest.importorskip("imageio.v2")
    pytest.importorskip("imageio_ffmpeg")
    video = tmp_path / "pong.mp4"
    assert (
        main(["evaluate", str(pong_run), "--episodes", "1", "--epsilon", "1.0", "--video", str(video)]) == 0
    )
    assert f"video: {video}" in capsys.readouterr().out
    with imageio.get_reader(video) as reader:
        frames = [frame for frame in reader]  # noqa: C416  (list() would preallocate len(reader): inf)
        fps = reader.get_meta_data()["fps"]
    # Pong ends at 21 points, so a game lasts hundreds of agent steps, one frame each.
    assert len(frames) > 500 and frames[0].shape == (210, 160, 3) and fps == 15
    assert len({frame.tobytes() for frame in frames[::50]}) > 5  # the screen changes
