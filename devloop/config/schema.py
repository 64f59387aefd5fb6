"""The shape of devloop.yaml as pydantic models: validation and the JSON Schema."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_PORT = re.compile(r"^(?:(\d{1,5}):)?(\d{1,5})$")
# Docker's reference grammar, repository part only (the tag is devloop's to compute).
_REPOSITORY = re.compile(
    r"^(?:(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?::\d+)?|[A-Za-z0-9-]+:\d+|localhost)/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
EXTENSION_KEY = "^x-"  # top-level keys starting with x- hold anchors to reuse, like Compose's
PATTERN_HINTS = {
    _NAME: "a DNS label: lowercase letters, digits and '-', starting and ending with a letter or "
    "digit"
}


def _scalar_text(v: Any) -> Any:
    """YAML numbers and booleans in env, build args and ports mean their text (`true`, `8080`)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v) if isinstance(v, int | float) else v


def _port(v: str) -> str:
    m = _PORT.match(v)
    if not m or not all(0 < int(g) < 65536 for g in m.groups() if g):
        raise ValueError(f"port {v!r} is not 'local:container' or 'port', with ports in 1-65535")
    return v


Text = Annotated[
    str, BeforeValidator(_scalar_text, json_schema_input_type=str | int | float | bool)
]
PortText = Annotated[
    str,
    BeforeValidator(_scalar_text, json_schema_input_type=str | int),
    AfterValidator(_port),
    Field(description="'local:container' or 'port'"),
]
DnsLabel = Annotated[str, Field(pattern=_NAME, max_length=63)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


def _context_glob(v: str, what: str) -> str:
    if v.startswith("/"):
        raise ValueError(f"{what} must be relative to the build context, got {v!r}")
    if ".." in v.replace("\\", "/").split("/"):
        raise ValueError(f"{what} must stay inside the build context (no '..'), got {v!r}")
    return v


class ExecThen(_Strict):
    """Run a command in the container after the files land."""

    exec: str | list[str] = Field(description="command to run in the container after a sync")


Then = Literal["none", "restart"] | ExecThen


class SyncRuleSpec(_Strict):
    src: str = Field(description="glob relative to the build context, e.g. 'app/**/*.py'")
    dest: str = Field(description="absolute directory in the container the matched files go to")
    then: Then = Field(
        default="none",
        description="after the files land: none, restart (the process, same container), or {exec: "
        "cmd}",
    )
    strip: str | None = Field(
        default=None,
        description="leading directory of src to drop before joining with dest (default: the "
        "glob's fixed prefix)",
    )
    ignore: list[str] = Field(
        default_factory=list,
        description="globs relative to the build context that this rule does not sync, e.g. "
        "'web/package.json' (another rule, or a rebuild, takes them)",
    )

    @field_validator("then", mode="before")
    @classmethod
    def _then(cls, v: Any) -> Any:
        if isinstance(v, str) and v not in ("none", "restart"):
            raise ValueError(f"then must be none, restart or {{exec: command}}, got {v!r}")
        return v

    @field_validator("src")
    @classmethod
    def _inside(cls, v: str) -> str:
        return _context_glob(v, "sync src")

    @field_validator("ignore")
    @classmethod
    def _ignore_inside(cls, v: list[str]) -> list[str]:
        return [_context_glob(g, "sync ignore") for g in v]

    @field_validator("dest")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"sync dest must be an absolute path in the container, got {v!r}")
        if any(c in v for c in "\n\r\0"):
            raise ValueError(f"sync dest must not contain a line break or NUL, got {v!r}")
        return v


class BuilderSpec(_Strict):
    command: str = Field(
        description="shell command that builds $IMAGE from $CONTEXT and $DOCKERFILE"
    )


class LocalSpec(_Strict):
    command: str | None = Field(
        default=None,
        description="shell command that runs the service on this machine (`dev --local`)",
    )
    cwd: str = Field(default=".", description="its working directory, relative to devloop.yaml")
    env: dict[str, Text] = Field(
        default_factory=dict, description="variables added to (and overriding) the pod's env"
    )


class ServiceSpec(_Strict):
    image: str = Field(description="image repository, e.g. 'shop/web' (the tag is computed)")
    context: str = Field(
        default=".", description="build context directory, relative to devloop.yaml"
    )
    dockerfile: str = Field(default="Dockerfile", description="Dockerfile, relative to the context")
    target: str | None = Field(default=None, description="build target stage")
    build_args: dict[str, Text] = Field(default_factory=dict)
    builder: BuilderSpec | None = Field(
        default=None, description="custom build command instead of the Docker SDK"
    )
    manifests: list[str] = Field(
        default_factory=list,
        description="Jinja manifest templates or plain YAML, relative to devloop.yaml; globs "
        "('k8s/*.yaml', 'k8s/**/*.yaml') name every file they match. An image reference naming "
        "a service's image ('image: web', 'web:latest') gets the built tag",
    )
    archetype: str | None = Field(
        default=None,
        description="built-in manifest archetype: web, worker, or image (built for other "
        "services to start FROM, not deployed)",
    )
    values: dict[str, Any] = Field(
        default_factory=dict, description="template values for this service"
    )
    sync: list[SyncRuleSpec] = Field(default_factory=list)
    rebuild: list[str] = Field(
        default_factory=list,
        description="globs relative to the build context whose changes rebuild the image even "
        "when a sync rule matches them (compose's 'action: rebuild'), e.g. 'package.json'",
    )
    ports: list[PortText] = Field(default_factory=list, description="'local:container' or 'port'")
    env: dict[str, Text] = Field(default_factory=dict)
    requires: list[str] = Field(
        default_factory=list, description="services whose images this one builds FROM"
    )
    trigger: Literal["auto", "manual"] = Field(
        default="auto",
        description="auto: act on every change; manual: changes wait for a trigger (key t, the "
        "dashboard); `devloop dev --trigger` overrides it for every service",
    )

    @field_validator("rebuild")
    @classmethod
    def _rebuild_inside(cls, v: list[str]) -> list[str]:
        return [_context_glob(g, "rebuild") for g in v]

    local: LocalSpec | None = Field(
        default=None, description="how `devloop dev --local SERVICE` runs it as a local process"
    )

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        if ":" in v.rsplit("/", 1)[-1] or "@" in v:
            raise ValueError(
                f"image {v!r} must not carry a tag or digest: devloop computes the tag"
            )
        if not _REPOSITORY.match(v):
            raise ValueError(f"image {v!r} is not a repository name (lowercase, e.g. 'shop/web')")
        return v


class KubernetesSpec(_Strict):
    context: str | None = Field(
        default=None, description="kube context (default: the kubeconfig's current one)"
    )
    namespace: DnsLabel | None = Field(
        default=None, description="namespace (default: the project name)"
    )
    allowed_contexts: list[str] = Field(
        default_factory=list, description="non-local contexts devloop may deploy to"
    )
    rollout_timeout: float = Field(default=180.0, gt=0, description="seconds to wait for a rollout")


class Activation(_Strict):
    env: str | None = Field(default=None, description="'VAR' (set and non-empty) or 'VAR=value'")
    kube_context: str | None = Field(default=None, description="glob on the kube context name")

    @model_validator(mode="after")
    def _some_rule(self) -> Activation:
        if not self.env and not self.kube_context:
            raise ValueError("an activation needs 'env' or 'kube_context'")
        return self


class ProfileSpec(_Strict):
    activation: list[Activation] = Field(default_factory=list)
    target: Literal["auto", "docker", "kubernetes"] | None = None
    kubernetes: dict[str, Any] | None = None
    registry: str | None = None
    registry_insecure: list[str] | None = None
    values: dict[str, Any] | None = None
    ignore: list[str] | None = None
    services: dict[str, dict[str, Any]] | None = Field(
        default=None, description="per-service overrides, merged into services"
    )


class ConfigSpec(_Strict):
    """devloop.yaml"""

    model_config = ConfigDict(extra="forbid", frozen=True, title="devloop.yaml")

    name: Annotated[
        str, Field(pattern=_NAME, max_length=53, description="project name (a DNS label)")
    ]
    target: Literal["auto", "docker", "kubernetes"] = Field(
        default="auto",
        description="where to run: docker, kubernetes, or auto (kubernetes when a context is set)",
    )
    kubernetes: KubernetesSpec = Field(default_factory=KubernetesSpec)
    registry: str | None = Field(
        default=None, description="registry to push to, e.g. 'localhost:5000'"
    )
    registry_insecure: list[str] = Field(
        default_factory=list,
        description="registries (host[:port] or CIDR) reached over plain HTTP or unverified TLS, "
        "like the daemon's insecure-registries; loopback registries always are",
    )
    values: dict[str, Any] = Field(
        default_factory=dict, description="template values for every service"
    )
    ignore: list[str] = Field(
        default_factory=list, description="extra .dockerignore-style patterns never watched"
    )
    keep_images: int = Field(
        default=3,
        ge=1,
        description="how many devloop-made tags to keep per image; older ones are removed "
        "after a successful deploy",
    )
    services: dict[DnsLabel, ServiceSpec] = Field(min_length=1, description="at least one service")
    profiles: dict[str, ProfileSpec] = Field(default_factory=dict)


SCHEMA_FILE = ".devloop.schema.json"
"""Where `devloop init` writes the schema, next to devloop.yaml; its modeline points there."""


def json_schema() -> str:
    """The JSON Schema of devloop.yaml, for yaml-language-server and other editors.

    Draft-07, the draft yaml-language-server supports fully (`definitions`, not `$defs`).
    """
    schema = ConfigSpec.model_json_schema(ref_template="#/definitions/{model}")
    defs = schema.pop("$defs")
    # a profile's service override takes a service's keys, every one optional: as strict as
    # the top level (the loader rejects the same unknown keys)
    override = {k: v for k, v in defs["ServiceSpec"].items() if k != "required"}
    override["title"] = "ServiceOverride"
    defs["ServiceOverride"] = override
    defs["ProfileSpec"]["properties"]["services"] = {
        "description": "per-service overrides, merged into services",
        "type": "object",
        "additionalProperties": {"$ref": "#/definitions/ServiceOverride"},
    }
    schema["definitions"] = defs
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    schema["patternProperties"] = {EXTENSION_KEY: {"description": "free for YAML anchors; ignored"}}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
