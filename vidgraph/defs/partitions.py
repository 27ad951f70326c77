"""A partition is a shard of source videos; shards are added as videos land."""

from dagster import DynamicPartitionsDefinition

shards = DynamicPartitionsDefinition(name="shards")
