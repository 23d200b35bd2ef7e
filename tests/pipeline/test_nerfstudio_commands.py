"""The training command, parsed by nerfstudio's own command-line parser (no training runs)."""

import tyro
from nerfstudio.configs.method_configs import AnnotatedBaseConfigUnion

from pipeline import layout
from pipeline.nerfstudio import train_command


def parse(argv: list[str]):
    assert argv[0] == "ns-train"
    return tyro.cli(AnnotatedBaseConfigUnion, args=argv[1:])


def test_training_writes_its_run_where_the_later_steps_look():
    config = parse(train_command(7))
    assert config.get_base_dir() == layout.TRAIN_RUN
    assert config.get_base_dir() / "config.yml" == layout.CONFIG
    assert config.get_checkpoint_dir() == layout.CHECKPOINTS
    assert config.data == layout.NERFSTUDIO_DATA
    assert config.max_num_iterations == 7


def test_training_keeps_the_colmap_frame_and_runs_headless():
    config = parse(train_command(None))
    parser = config.pipeline.datamanager.dataparser
    assert (parser.center_method, parser.orientation_method, parser.auto_scale_poses) == (
        "none",
        "none",
        False,
    )
    assert config.max_num_iterations == 30000
    assert config.vis == "viewer" and config.viewer.websocket_host == "127.0.0.1"
    assert config.viewer.quit_on_train_completion
