"""Pydantic models of `CreateAigcImageTask` for VOD (2018-07-17) and MPS (2019-06-12).

Field names, types and documented limits follow the official SDKs' `models.py`
(`tencentcloud-sdk-python-vod` / `-mps`): `CreateAigcImageTaskRequest` and the types it names.
Unknown fields are forbidden. The models are lax by default, as the real API is about numeric
strings (its own example sends `"TasksPriority": "10"`); the manifest validates with
`strict=True` so that a user's wrong type is caught before anything is sent.

Model-dependent values (model names, versions, aspect ratios, resolutions) change with every
model release, so they are plain strings here; fixed switches (`Enabled`/`Disabled`, storage
modes, file types) are literals.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SESSION_ID_MAX = 50
SESSION_CONTEXT_MAX = 1000
MPS_PROMPT_MAX = 1000

EnabledSwitch = Literal["Enabled", "Disabled"]


class ApiModel(BaseModel):
    """Base of every request model: API field names as they are, nothing unknown accepted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_wire(self) -> dict[str, Any]:
        """The JSON object the API expects: unset fields left out."""
        # What model_dump(exclude_none=True) does, minus its Python-level argument handling:
        # this runs once per task, a million times for a large batch.
        wire: dict[str, Any] = self.__pydantic_serializer__.to_python(self, exclude_none=True)
        return wire


class PromptOrInputs(ApiModel):
    """A request that needs a Prompt unless it names input images in `inputs_field`.

    The rule is data (`inputs_field`) so that `batcher.api.schema_gen` can copy it into the
    schema table: one validator, both services.
    """

    inputs_field: ClassVar[str]

    @model_validator(mode="after")
    def _prompt_or_inputs(self) -> PromptOrInputs:
        values = self.__dict__  # the fields' values: `Prompt` is declared by the subclasses
        if not values.get("Prompt") and not values.get(self.inputs_field):
            raise ValueError(f"Prompt is required when {self.inputs_field} is empty")
        return self


# --- VOD 2018-07-17 -------------------------------------------------------------------------


class AigcImageTaskInputFileInfo(ApiModel):
    """VOD: one input image of an AIGC image task."""

    Type: Literal["File", "Url", "Base64"] | None = None
    FileId: str | None = None
    Url: str | None = None
    Base64: str | None = None
    Text: str | None = None
    ReferenceType: str | None = None


class AigcImageOutputConfig(ApiModel):
    """VOD: output media file configuration of an AIGC image task."""

    StorageMode: Literal["Temporary", "Permanent"] | None = None
    MediaName: Annotated[str, Field(max_length=64)] | None = None
    ClassId: int | None = None
    ExpireTime: str | None = None
    Resolution: str | None = None
    AspectRatio: str | None = None
    PersonGeneration: Literal["AllowAdult", "Disallowed"] | None = None
    InputComplianceCheck: EnabledSwitch | None = None
    OutputComplianceCheck: EnabledSwitch | None = None
    OutputImageCount: Annotated[int, Field(ge=1, le=9)] | None = None
    OutputFormat: Literal["jpeg", "png"] | None = None
    LogoAdd: EnabledSwitch | None = None


class VodCreateAigcImageTaskRequest(PromptOrInputs):
    """VOD `CreateAigcImageTask` request (API version 2018-07-17)."""

    inputs_field: ClassVar[str] = "FileInfos"

    SubAppId: int
    ModelName: str
    ModelVersion: str
    FileInfos: Annotated[list[AigcImageTaskInputFileInfo], Field(max_length=14)] | None = None
    Prompt: str | None = None
    NegativePrompt: str | None = None
    EnhancePrompt: EnabledSwitch | None = None
    OutputConfig: AigcImageOutputConfig | None = None
    InputRegion: Literal["Mainland", "Oversea", "OverseaUSWest"] | None = None
    SceneType: str | None = None
    Seed: int | None = None
    SessionId: Annotated[str, Field(max_length=SESSION_ID_MAX)] | None = None
    SessionContext: Annotated[str, Field(max_length=SESSION_CONTEXT_MAX)] | None = None
    TasksPriority: Annotated[int, Field(ge=-10, le=10)] | None = None
    ExtInfo: str | None = None



# --- MPS 2019-06-12 -------------------------------------------------------------------------


class AigcImageInfo(ApiModel):
    """MPS: one reference image (a publicly reachable URL)."""

    ImageUrl: str | None = None
    ReferenceType: str | None = None


class AigcImageExtraParam(ApiModel):
    """MPS: extra model parameters."""

    AspectRatio: str | None = None
    Resolution: str | None = None
    LogoAdd: Annotated[int, Field(ge=0, le=1)] | None = None
    OutputFormat: Literal["jpeg", "png"] | None = None


class AigcStoreCosParam(ApiModel):
    """MPS: the COS bucket the result is stored in."""

    CosBucketName: str | None = None
    CosBucketRegion: str | None = None
    CosBucketPath: str | None = None


class MpsCreateAigcImageTaskRequest(PromptOrInputs):
    """MPS `CreateAigcImageTask` request (API version 2019-06-12)."""

    inputs_field: ClassVar[str] = "ImageInfos"

    ModelName: str | None = None
    ModelVersion: str | None = None
    SceneType: str | None = None
    Prompt: Annotated[str, Field(max_length=MPS_PROMPT_MAX)] | None = None
    NegativePrompt: str | None = None
    EnhancePrompt: bool | None = None
    ImageInfos: Annotated[list[AigcImageInfo], Field(max_length=10)] | None = None
    OutputImageCount: Annotated[int, Field(ge=1)] | None = None
    ExtraParameters: AigcImageExtraParam | None = None
    AdditionalParameters: str | None = None
    StoreCosParam: AigcStoreCosParam | None = None
    Operator: str | None = None



RequestModel = VodCreateAigcImageTaskRequest | MpsCreateAigcImageTaskRequest
RequestModelType = type[VodCreateAigcImageTaskRequest] | type[MpsCreateAigcImageTaskRequest]

REQUEST_MODELS: dict[str, RequestModelType] = {
    "vod": VodCreateAigcImageTaskRequest,
    "mps": MpsCreateAigcImageTaskRequest,
}


def request_model(service: str) -> RequestModelType:
    """The request model of `service` ("vod" or "mps")."""
    return REQUEST_MODELS[service]


def field_annotation(model: type[BaseModel], dotted: str) -> Any:
    """The annotation of a dotted parameter path (`OutputConfig.AspectRatio`), or None if unknown.

    The manifest uses it to coerce CSV cells (always strings) to the parameter's type.
    """
    current: type[BaseModel] | None = model
    annotation: Any = None
    for part in dotted.split("."):
        if current is None or part not in current.model_fields:
            return None
        annotation = current.model_fields[part].annotation
        current = _nested_model(annotation)
    return annotation


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model class inside `X | None`, if the annotation names one."""
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None
