"""A DynamoDB *model* server: the rules a Scan client can see, fast, with knobs no emulator has.

Why another server when moto exists: moto is an emulator, and a slow one for Scan (every
request costs time in proportion to the whole table), with no notion of network latency,
partitions or capacity. A parallel-scan library is about exactly those, so its benchmarks
and demo need a server that

* answers DynamoDB's JSON protocol to real, signing aiobotocore/boto3 clients (signatures
  are ignored), with DynamoDB's error shapes and codes;
* follows the documented Scan contract closely (segments, ``LastEvaluatedKey``, ``Limit``
  and the 1 MB page counted before the filter, ``Select``, expressions, global secondary
  indexes, ``ConsumedCapacity`` from the bytes read);
* models what only the real service has: a round-trip ``latency`` slept concurrently,
  partitions each serving at most ``partition_rcu`` read units per second, provisioned
  capacity and on-demand maximum throughput that throttle, changed at run time by
  UpdateTable and reported by DescribeTable;
* is never the bottleneck: items are kept serialized, so an unfiltered page is the
  concatenation of stored bytes, sliced out of a table kept in scan order.

Where things are, one job per module:

========================  ===============================================================
``_values``               attribute values: what DynamoDB accepts, canonical form, sizes
``_keys``                 key order, key hashes, segments and partitions of the hash space
``_store``                a table's or index's stored items and its sorted view
``_tables``               table and index definitions, capacity settings, UpdateTable
``_throughput``           what a read costs; the buckets that throttle (table, partition)
``_scan``                 the Scan rules
``_operations``           the model: one handler per operation (and the private BulkLoad)
``_expressions``          condition and projection expressions
``_requests``             request parameters shared by the operations
``_errors``, ``_json``    DynamoDB's error answers; the JSON codec
``_options``              :class:`ModelOptions`, the knobs beyond the API
``_http``                 HTTP/1.1 on 127.0.0.1, and :func:`serve_model` (in-process)
``_process``              :class:`ModelServer` (a child process) and the command's loop
``_bulk``                 :func:`bulk_load`, the client side of BulkLoad
``__main__``              ``python -m dynascan_async.testing.model``
========================  ===============================================================
"""

from __future__ import annotations

__all__ = ["ModelOptions", "ModelServer", "bulk_load", "run_model", "serve_model"]

from ._bulk import bulk_load
from ._http import serve_model
from ._options import ModelOptions
from ._process import ModelServer, run_model
