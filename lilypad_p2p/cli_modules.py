"""`lilypad-p2p modules ...`: add, list, show and pull modules; build the shipped images.

Modules added here go to `<home>/modules/` (a running node sees them at once). `add` takes a
TOML definition, a directory holding `module.toml`, or `git+URL@COMMIT[#PATH]`; `pull` makes
a module's image ready (by digest, within the node's `[modules]` size limit and timeout).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from lilypad_p2p._cli_common import HomeOption, _fail, _home

modules_app = typer.Typer(
    help="Job modules: add (file or git), list, show, pull their images, build the shipped ones."
)


def _catalog(home: Path | None) -> Any:
    from lilypad_p2p.exec import ModuleCatalog

    return ModuleCatalog(_home(home) / "modules")


@modules_app.command("add")
def modules_add(
    source: Annotated[str, typer.Argument(
        help="A module.toml, a directory holding one, or git+URL@COMMIT\\[#PATH].")],
    home: HomeOption = None,
) -> None:
    """Add a module definition to this node; prints its module ID (the CID of the definition)."""
    from lilypad_p2p.exec import BadDefinition, UnreadableDefinition, module_from_source

    try:
        module = module_from_source(source)
    except UnreadableDefinition as exc:
        _fail(str(exc))
    except BadDefinition as exc:
        _fail(f"{exc}; fix the definition and add it again")
    catalog = _catalog(home)
    _refuse_a_taken_name(catalog, module)
    try:
        module_id = catalog.add(module)
    except OSError as exc:
        _fail(f"cannot keep the definition in this node's modules folder ({exc})")
    typer.echo(module_id)


def _refuse_a_taken_name(catalog: Any, module: Any) -> None:
    """Names are how people ask for modules: a shipped module's name, or a name@version that
    another module here already has, would make one of the two reachable only by ID."""
    from lilypad_p2p.exec import BUILTIN_IDS, UnknownModule, module_id

    new_id = module_id(module)
    if module.name in BUILTIN_IDS and BUILTIN_IDS[module.name] != new_id:
        _fail(f"{module.name!r} is the name of a shipped module; give yours another name")
    try:
        taken, _ = catalog.resolve(f"{module.name}@{module.version}")
    except UnknownModule:
        return
    if taken != new_id:
        _fail(f"{module.name}@{module.version} is already here as {taken}: raise the "
              "version of the changed definition")


@modules_app.command("list")
def modules_list(
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the modules this node can run: ID, image, parameters, resources, whether built."""
    import trio

    from lilypad_p2p.exec import DockerUnavailable, ExecError, Executor

    catalog = _catalog(home)

    async def describe() -> list[dict[str, Any]]:
        try:
            executor: Executor | None = await Executor.connect(modules=catalog)
        except DockerUnavailable:
            executor = None
        rows = []
        for module_id in catalog:
            module = catalog[module_id]
            image_id: str | None = None
            if executor is not None and _is_local(executor, module.image):
                try:
                    image_id = await executor.image_id(module_id)
                except ExecError:
                    image_id = None
            row = _describe(module_id, module, catalog.is_builtin(module_id))
            row.update(image_id=image_id,
                       built=None if executor is None else image_id is not None)
            rows.append(row)
        if executor is not None:
            executor.close()
        return rows

    rows = trio.run(describe)
    for why in catalog.corrupt.values():
        typer.secho(f"warning: {why}", err=True, fg=typer.colors.YELLOW)
    if as_json:
        typer.echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    for row in rows:
        state = {None: "Docker unavailable", True: row["image_id"], False: "not present"}
        params = ", ".join(
            f"{name}: {p['kind']}" + ("" if p.get("default") is None else f" = {p['default']!r}")
            for name, p in row["params"].items()
        )
        res = row["resources"]
        shipped = "  (shipped)" if row["shipped"] else ""
        typer.echo(
            f"{row['name']}@{row['version']}  {row['id']}{shipped}\n"
            f"    {row['description']}\n"
            f"    params({params}); {res['milli_cpu']} mCPU, {res['memory_mb']} MiB RAM, "
            f"{res['disk_mb']} MiB disk, {res['gpus']} GPU(s), "
            f"{'deterministic' if row['deterministic'] else 'NON-deterministic'}\n"
            f"    image {row['image']}: {state[row['built']]}"
        )


@modules_app.command("show")
def modules_show(
    module: Annotated[str, typer.Argument(help="Module ID (or name).")],
    home: HomeOption = None,
) -> None:
    """Print a module's definition (JSON, with its ID)."""
    from lilypad_p2p.exec import UnknownModule

    catalog = _catalog(home)
    try:
        module_id, found = catalog.resolve(module)
    except UnknownModule as exc:
        _fail(str(exc))
    typer.echo(json.dumps(_describe(module_id, found, catalog.is_builtin(module_id)),
                          indent=2, sort_keys=True))


@modules_app.command("pull")
def modules_pull(
    module: Annotated[str, typer.Argument(help="Module ID (or name) whose image to pull.")],
    home: HomeOption = None,
) -> None:
    """Make a module's image ready: pulled by digest, or built from its shipped recipe.

    A pull is checked against the digest, within the node's size limit and timeout from
    config `\\[modules]`."""
    import trio

    from lilypad_p2p.config import load_config
    from lilypad_p2p.errors import LilypadError
    from lilypad_p2p.exec import RECIPE_IMAGE_PREFIX, Executor
    from lilypad_p2p.roles._module_setup import pull_limits

    catalog = _catalog(home)

    async def pull() -> str:
        module_id, found = catalog.resolve(module)
        config = load_config(home=_home(home))
        executor = await Executor.connect(modules=catalog, pull_limits=pull_limits(config))
        try:
            if found.image.startswith(RECIPE_IMAGE_PREFIX):
                await executor.build_image(found.image.removeprefix(RECIPE_IMAGE_PREFIX))
            return await executor.image_id(module_id)
        finally:
            executor.close()

    try:
        image_id = trio.run(pull)
    except LilypadError as exc:
        _fail(str(exc))
    typer.echo(image_id)


@modules_app.command("image")
def modules_image(
    recipe: Annotated[Path, typer.Argument(help="A recipe directory (recipe.toml, rootfs/).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Archive to write.")],
) -> None:
    """Build an image from a recipe, offline and deterministically, as a `docker save` archive.

    Publish it with `skopeo copy docker-archive:FILE docker://REGISTRY/REPO:TAG`; the README's
    "Image recipes" describes recipe.toml."""
    from lilypad_p2p.exec import ExecError, build_image_archive

    recipe = recipe.resolve()
    try:
        archive = build_image_archive(recipe.name, recipe.parent)
    except (ExecError, OSError) as exc:
        _fail(f"cannot build {recipe}: {exc}")
    try:
        output.write_bytes(archive.archive)
    except OSError as exc:
        _fail(f"cannot write {output}: {exc.strerror}; give -o a file in a writable directory")
    typer.echo(archive.image_id)


@modules_app.command("build")
def modules_build() -> None:
    """Build the shipped module images offline; images already present are skipped."""
    import trio

    from lilypad_p2p.exec import (
        ExecError,
        Executor,
        ImageMissing,
        recipe_is_optional,
        recipe_names,
    )

    async def build() -> list[str]:
        executor = await Executor.connect()
        report = []
        try:
            for recipe in recipe_names():
                try:
                    image_id, loaded = await executor.build_image(recipe)
                except ImageMissing as exc:
                    if not recipe_is_optional(recipe):
                        raise
                    report.append(f"{recipe}: skipped, optional ({exc})")
                    continue
                report.append(f"{recipe}: {image_id} ({'loaded' if loaded else 'already present'})")
        finally:
            executor.close()
        return report

    try:
        report = trio.run(build)
    except ExecError as exc:
        _fail(str(exc))
    for line in report:
        typer.echo(line)


def _is_local(executor: Any, image: str) -> bool:
    """Listing never pulls: a registry image counts as built only if it is already here."""
    from lilypad_p2p.exec import RECIPE_IMAGE_PREFIX

    return image.startswith(RECIPE_IMAGE_PREFIX) or executor.engine.has_image(image)


def _describe(module_id: str, module: Any, shipped: bool) -> dict[str, Any]:
    from lilypad_p2p.exec import canonical_definition

    definition = canonical_definition(module)
    return {"id": module_id, "shipped": shipped, **definition}
