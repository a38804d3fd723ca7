"""The declarative base every table derives from, with a naming convention so that Alembic
generates stable constraint names."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import DateTime, MetaData, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.orm.instrumentation import manager_of_class
from sqlalchemy.sql.elements import NamedColumn

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Timestamps:
    """`created_at` and `updated_at`, set by the database."""

    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


Model = TypeVar("Model", bound=Base)


def read_only(model: type[Model], values: Mapping[str, Any]) -> Model:
    """A `model` holding `values` (attribute names) as a row a statement sent to the driver returned: in no
    session, so a change to it goes nowhere. The values are set as the ORM's loading sets them, without
    the change events the constructor fires for each (about 0.8 µs instead of 10 for a client)."""
    instance: Model = manager_of_class(model).new_instance()
    instance.__dict__.update(values)
    return instance


def attribute_columns(model: type[Base]) -> tuple[tuple[str, NamedColumn[Any]], ...]:
    """Every mapped column of `model`, with the name of the attribute that holds it: what a statement sent
    to the driver selects, each column named as its attribute, for `read_only` to hold the row."""
    return tuple((prop.key, prop.columns[0]) for prop in model.__mapper__.column_attrs)
