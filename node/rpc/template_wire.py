"""Metadata templates and violations between the wire (idnode.v1) and the domain.

A template from the wire becomes the SNMS-shaped dict :func:`registry.templates.
parse_template` reads, so the wire, a template file (``idnode template put``) and any
later door are checked by the one parser, which reports every problem at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from idnode.v1 import record_pb2, registry_pb2
from registry.errors import Violation
from registry.templates import (
    DataType,
    Item,
    ItemState,
    Template,
    TemplateState,
    parse_template,
)

Field = registry_pb2.Template.Field
# At most this many violations travel in trailing metadata (gRPC limits metadata to
# 8 KiB by default: 20 violations with 64-character strings stay well below it).
MAX_TRAILER_VIOLATIONS = 20
# ...and this many per BulkRegister row.
MAX_ROW_VIOLATIONS = 32
_CLIP = 64
_DETAIL_CLIP = 240

_KIND_NAMES = {Field.KIND_UNSPECIFIED: "string", Field.KIND_STRING: "string",
               Field.KIND_INT: "int", Field.KIND_DECIMAL: "decimal", Field.KIND_DATE: "date",
               Field.KIND_URL: "url", Field.KIND_ENUM: "enum", Field.KIND_FILE: "file",
               Field.KIND_REFERENCE: "reference"}
_KINDS = {DataType.STRING: Field.KIND_STRING, DataType.DATE: Field.KIND_DATE,
          DataType.URL: Field.KIND_URL, DataType.ENUM: Field.KIND_ENUM,
          DataType.FILE: Field.KIND_FILE, DataType.REFERENCE: Field.KIND_REFERENCE}
_STATES = {TemplateState.DRAFT: registry_pb2.Template.STATE_DRAFT,
           TemplateState.PUBLISHED: registry_pb2.Template.STATE_PUBLISHED,
           TemplateState.WITHDRAWN: registry_pb2.Template.STATE_WITHDRAWN}


def template_from_wire(msg: registry_pb2.Template, prefix: str) -> Template:
    """The draft a PutTemplate carries (every problem reported at once)."""
    return parse_template(template_dict_from_wire(msg), prefix=prefix)


def template_dict_from_wire(msg: registry_pb2.Template) -> dict[str, Any]:
    """The SNMS-shaped dict of a wire template (the node-set fields are left out)."""
    out: dict[str, Any] = {"prefix": msg.prefix, "version": msg.version,
                           "description": msg.description,
                           "industryCategory": msg.industry_category,
                           "industrySpecific": msg.industry_specific,
                           "industryTrade": msg.industry_trade,
                           "industrySubclass": msg.industry_subclass,
                           "type": msg.object_type,
                           "allowOtherTypes": msg.allow_other_types,
                           "items": [_field_dict(f) for f in msg.fields]}
    return out


def _field_dict(f: registry_pb2.Template.Field) -> dict[str, Any]:
    metadata: dict[str, Any] = {"type": _KIND_NAMES.get(f.kind, f"kind {f.kind}")}
    if f.HasField("min_length"):
        metadata["minLength"] = f.min_length
    if f.HasField("max_length"):
        metadata["maxLength"] = f.max_length
    if f.HasField("precision"):
        metadata["precision"] = f.precision
    for key, text in (("pattern", f.pattern), ("minimum", f.minimum),
                      ("maximum", f.maximum), ("format", f.date_format)):
        if text:
            metadata[key] = text
    if f.enum_values:
        metadata["enum"] = list(f.enum_values)
    state: int = {Field.ITEM_STATE_UNSPECIFIED: 1, Field.ITEM_STATE_ENABLED: 1,
                  Field.ITEM_STATE_DISABLED: 0}.get(f.state, -1)
    return {"name": f.name, "idType": f.type, "idIndex": f.id_index, "required": f.required,
            "state": state, "metadata": metadata, "grants": list(f.grants)}


def template_from_answer(msg: registry_pb2.Template) -> Template:
    """A template as the node answered it (state and times included): for clients."""
    data = template_dict_from_wire(msg)
    data["state"] = {v: k for k, v in _STATES.items()}.get(msg.state, TemplateState.DRAFT)
    for key, name in (("updatedAt", "updated_at"), ("createdAt", "created_at"),
                      ("publishedAt", "published_at"), ("withdrawnAt", "withdrawn_at")):
        if msg.HasField(name):
            data[key] = getattr(msg, name).seconds
    data["updatedBy"] = msg.updated_by
    return parse_template(data, stored=True)


def template_to_wire(t: Template) -> registry_pb2.Template:
    out = registry_pb2.Template(
        fields=[_field_to_wire(i) for i in t.items], allow_other_types=t.allow_other_types,
        version=t.version, state=_STATES[t.state], description=t.description,
        industry_category=t.industry.category, industry_specific=t.industry.specific,
        industry_trade=t.industry.trade, industry_subclass=t.industry.subclass,
        object_type=t.object_type, prefix=t.prefix.text, updated_by=t.updated_by)
    for name, seconds in (("updated_at", t.updated_at), ("created_at", t.created_at),
                          ("published_at", t.published_at),
                          ("withdrawn_at", t.withdrawn_at)):
        if seconds:
            getattr(out, name).CopyFrom(Timestamp(seconds=seconds))
    return out


def _field_to_wire(item: Item) -> registry_pb2.Template.Field:
    s = item.schema
    kind = _KINDS.get(s.type)
    if kind is None:  # a number
        kind = Field.KIND_INT if s.precision == 0 else Field.KIND_DECIMAL
    out = Field(type=item.id_type, kind=kind, required=item.required, pattern=s.pattern,
                enum_values=list(s.values), name=item.name, id_index=item.id_index,
                state=(Field.ITEM_STATE_ENABLED if item.state is ItemState.ENABLED
                       else Field.ITEM_STATE_DISABLED),
                minimum="" if s.minimum is None else str(s.minimum),
                maximum="" if s.maximum is None else str(s.maximum),
                date_format=s.format, grants=list(item.grants))
    if s.min_length is not None:
        out.min_length = s.min_length
    if s.max_length is not None:
        out.max_length = s.max_length
    if s.precision is not None:
        out.precision = s.precision
    return out


def violation_to_wire(v: Violation) -> record_pb2.Violation:
    return record_pb2.Violation(index=v.index, type=v.type[:_CLIP], item=v.item[:_CLIP],
                                rule=v.rule[:_CLIP], value=v.value[:_CLIP],
                                detail=v.detail[:_DETAIL_CLIP])


def violations_to_wire(violations: Sequence[Violation],
                       limit: int = MAX_TRAILER_VIOLATIONS) -> record_pb2.Violations:
    """The first ``limit`` violations and how many more there were."""
    return record_pb2.Violations(
        violations=[violation_to_wire(v) for v in violations[:limit]],
        omitted=max(0, len(violations) - limit))


__all__ = ["MAX_ROW_VIOLATIONS", "MAX_TRAILER_VIOLATIONS", "template_dict_from_wire",
           "template_from_answer", "template_from_wire", "template_to_wire", "violation_to_wire",
           "violations_to_wire"]
