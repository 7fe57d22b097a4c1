"""GPU detection from recorded nvidia-smi outputs, and GPU device requests for GPU modules."""

import os
import stat
from pathlib import Path

from lilypad_p2p.exec import (
    ContainerSettings,
    GpuSummary,
    detect_gpus,
    load_definition_text,
    parse_nvidia_smi,
    summarize,
)

# `nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader,nounits` as printed by
# an 8-GPU H200 node, a mixed workstation, and a driver that cannot read one card's memory.
H200_NODE = "".join(f"{i}, NVIDIA H200, 143771\n" for i in range(8))
MIXED = "0, NVIDIA GeForce RTX 4090, 24564\n1, Tesla T4, 15360\n"
PARTIAL = "0, NVIDIA A100-SXM4-80GB, 81920\n1, NVIDIA A100-SXM4-80GB, [N/A]\nWARNING: x\n"


def test_parse_recorded_outputs():
    assert summarize(parse_nvidia_smi(H200_NODE)) == GpuSummary(8, 143771, ("NVIDIA H200",))
    mixed = summarize(parse_nvidia_smi(MIXED))
    assert (mixed.count, mixed.vram_mb) == (2, 15360)  # a job may land on the smallest
    assert mixed.models == ("NVIDIA GeForce RTX 4090", "Tesla T4")
    assert summarize(parse_nvidia_smi(PARTIAL)).count == 1
    assert summarize(parse_nvidia_smi("")) == GpuSummary()


def _fake_tool(tmp_path: Path, output: str, code: int = 0) -> str:
    tool = tmp_path / "nvidia-smi"
    tool.write_text(f"#!/bin/sh\nprintf '%s' '{output}'\nexit {code}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return str(tool)


def test_detect_runs_the_tool_and_degrades_to_no_gpus(tmp_path):
    assert detect_gpus(_fake_tool(tmp_path, MIXED)).count == 2
    assert detect_gpus(_fake_tool(tmp_path, MIXED, code=9)) == GpuSummary()
    assert detect_gpus(os.fspath(tmp_path / "absent")) == GpuSummary()


def test_a_gpu_module_gets_a_docker_device_request():
    module = load_definition_text("""
name = "cuda-smoke"
image = "localhost:5000/gpu/smoke@sha256:""" + "ef" * 32 + """"
command = ["nvidia-smi"]
[resources]
milli_cpu = 1000
memory_mb = 1024
disk_mb = 64
gpus = 2
gpu_vram_mb = 16000
""")
    settings = ContainerSettings(
        name="job", image_id="sha256:" + "00" * 32, argv=module.command, user="1:1",
        inputs_dir=Path("/in"), outputs_dir=Path("/out"), resources=module.resources,
        module=module.name,
    )
    [request] = settings.host_config_arguments()["device_requests"]
    assert request["Count"] == 2 and request["Capabilities"] == [["gpu"]]
