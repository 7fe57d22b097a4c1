"""Job execution: modules, sealed inputs and outputs, and the sandboxed Docker executor.

Typical use by a provider (inside trio):

    executor = await Executor.connect()
    result = await executor.run(
        JobSpec("hash"), sealed_inputs, identity.sealing_private_key(),
        timeout_s=60, output_recipient=job_creator_x25519_public_key,
    )
    result.result_cid, result.sealed_output

and by a job creator: `seal_for(provider_key, JobInputs(files=..., params=...).encode())`, then
`unseal(own_private_key, result.sealed_output)` and `result_cid(tarball)` to check the hash.

The only package that talks to Docker; it knows nothing of deals, the network or the chain.
May import from lilypad_p2p: errors, files, tally, wire.
"""

from lilypad_p2p.exec._catalog import BUILTIN_IDS, BUILTIN_MODULES, ModuleCatalog
from lilypad_p2p.exec._definition import (
    canonical_definition,
    definition_bytes,
    load_definition_file,
    load_definition_text,
    module_from_bytes,
    module_id,
)
from lilypad_p2p.exec._docker import ContainerSettings, DockerEngine
from lilypad_p2p.exec._errors import (
    BadDefinition,
    BadParameters,
    DockerFailed,
    DockerUnavailable,
    ExecError,
    ImageMissing,
    ImageRefused,
    InputDecryptionFailed,
    JobFailed,
    JobTimedOut,
    MalformedInputs,
    OutOfMemory,
    OutputOverLimit,
    OutputRejected,
    SandboxFailed,
    UnknownModule,
    UnreadableDefinition,
    UnsealFailed,
)
from lilypad_p2p.exec._executor import Executor, JobResult, JobSpec, RunTimings
from lilypad_p2p.exec._gpus import Gpu, GpuSummary, detect_gpus, parse_nvidia_smi, summarize
from lilypad_p2p.exec._images import (
    RECIPES_DIR,
    ImageArchive,
    build_image_archive,
    recipe_is_optional,
    recipe_names,
)
from lilypad_p2p.exec._inputs import JobInputs, ParamValue
from lilypad_p2p.exec._modules import (
    MAX_RUN_TIME_S,
    RECIPE_IMAGE_PREFIX,
    Module,
    Param,
    Resources,
)
from lilypad_p2p.exec._registry import PullLimits, download_size
from lilypad_p2p.exec._sealing import as_private_key, as_public_key, seal_for, unseal
from lilypad_p2p.exec._sources import module_from_source
from lilypad_p2p.exec._tarball import result_cid, tar_directory

__all__ = [
    "BUILTIN_IDS",
    "BUILTIN_MODULES",
    "MAX_RUN_TIME_S",
    "RECIPES_DIR",
    "RECIPE_IMAGE_PREFIX",
    "BadDefinition",
    "BadParameters",
    "ContainerSettings",
    "DockerEngine",
    "DockerFailed",
    "DockerUnavailable",
    "ExecError",
    "Executor",
    "Gpu",
    "GpuSummary",
    "ImageArchive",
    "ImageMissing",
    "ImageRefused",
    "InputDecryptionFailed",
    "JobFailed",
    "JobInputs",
    "JobResult",
    "JobSpec",
    "JobTimedOut",
    "MalformedInputs",
    "Module",
    "ModuleCatalog",
    "OutOfMemory",
    "OutputOverLimit",
    "OutputRejected",
    "Param",
    "ParamValue",
    "PullLimits",
    "Resources",
    "RunTimings",
    "SandboxFailed",
    "UnknownModule",
    "UnreadableDefinition",
    "UnsealFailed",
    "as_private_key",
    "as_public_key",
    "build_image_archive",
    "canonical_definition",
    "definition_bytes",
    "detect_gpus",
    "download_size",
    "load_definition_file",
    "load_definition_text",
    "module_from_bytes",
    "module_from_source",
    "module_id",
    "parse_nvidia_smi",
    "recipe_is_optional",
    "recipe_names",
    "result_cid",
    "seal_for",
    "summarize",
    "tar_directory",
    "unseal",
]
