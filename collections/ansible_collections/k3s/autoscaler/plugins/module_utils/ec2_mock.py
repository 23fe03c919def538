# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""SQLite-backed mock of the EC2 instance API, behind ``k3s.autoscaler.ec2_instance(_info)``.

Everything the two mock modules do lives here; other Python code (the local cluster's fake
kubelet, the chaos harness, tests) uses :class:`MockEC2` directly:

.. code-block:: python

    from ansible_collections.k3s.autoscaler.plugins.module_utils.ec2_mock import MockEC2
    ec2 = MockEC2("/tmp/ec2.sqlite", region="us-east-1")
    for inst in ec2.list_instances(filters={"tag:role": "worker", "instance-state-name": "running"}):
        print(inst["instance_id"], inst["private_dns_name"], ec2.user_data(inst["instance_id"]))
    ec2.inject_failure("InsufficientInstanceCapacity", "run_instances", next_calls=2)

Model
-----
* One SQLite file (the *store*) holds all regions. Default path: env ``K3S_AUTOSCALER_EC2_STORE``,
  else ``~/.cache/k3s-autoscaler/ec2.sqlite``. WAL mode, ``busy_timeout`` 30 s, and every
  read-decide-write sequence runs in one ``BEGIN IMMEDIATE`` transaction, so concurrent processes
  (two ``exact_count`` runs) are serialised and never overshoot.
* Instances have the EC2 state names/codes pending 0, running 16, shutting-down 32, terminated 48,
  stopping 64, stopped 80. Time-based transitions are computed lazily from timestamps on every
  read: pending -> running after ``boot_seconds``; shutting-down -> terminated and stopping ->
  stopped after ``shutdown_seconds``. Times come from an injectable ``clock`` (epoch seconds).
  Terminated instances stay visible for one hour (as in EC2), then only :meth:`MockEC2.user_data`
  and ``list_instances(include_expired=True)`` see them.
* Instance dicts have the amazon.aws (snake_case) shape, see :meth:`MockEC2._to_api`.
* Failures: :class:`EC2Error` carries an EC2 error ``code`` (e.g. ``InsufficientInstanceCapacity``)
  and the API operation name (``RunInstances``); ``str()`` is botocore's
  ``An error occurred (CODE) when calling the OPERATION operation: MESSAGE``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import contextlib
import datetime
import fnmatch
import hashlib
import json
import os
import random
import sqlite3
import time
import uuid

from ansible_collections.k3s.autoscaler.plugins.module_utils.instance_types import INSTANCE_TYPES, known_instance_types

STORE_ENV = "K3S_AUTOSCALER_EC2_STORE"
DEFAULT_STORE = os.path.join("~", ".cache", "k3s-autoscaler", "ec2.sqlite")

DEFAULT_BOOT_SECONDS = 20.0
DEFAULT_SHUTDOWN_SECONDS = 5.0
TERMINATED_VISIBLE_SECONDS = 3600.0
BUSY_TIMEOUT_MS = 30000

STATE_CODES = {
    "pending": 0,
    "running": 16,
    "shutting-down": 32,
    "terminated": 48,
    "stopping": 64,
    "stopped": 80,
}
# every state except shutting-down and terminated (what amazon.aws treats as "existing")
LIVE_STATES = ["pending", "running", "stopping", "stopped"]

FAILURE_CODES = ("InsufficientInstanceCapacity", "RequestLimitExceeded", "Unavailable")
OPERATIONS = {
    "run_instances": "RunInstances",
    "terminate_instances": "TerminateInstances",
    "describe_instances": "DescribeInstances",
    "start_instances": "StartInstances",
    "stop_instances": "StopInstances",
    "create_tags": "CreateTags",
    "delete_tags": "DeleteTags",
}
FAILURE_OPERATIONS = tuple(sorted(OPERATIONS)) + ("any",)

_FAILURE_DEFAULTS = {
    # code: (HTTP status, message) as EC2 returns them
    "InsufficientInstanceCapacity": (
        500,
        "We currently do not have sufficient capacity in the Availability Zone you requested. "
        "Our system will be working on provisioning additional capacity. (injected by k3s.autoscaler EC2 mock)",
    ),
    "RequestLimitExceeded": (503, "Request limit exceeded. (injected by k3s.autoscaler EC2 mock)"),
    "Unavailable": (503, "The server is overloaded and can't handle the request. (injected by k3s.autoscaler EC2 mock)"),
}

# Real AZ names for common regions; any other region gets <region>a, b, c.
REGION_AZ_SUFFIXES = {
    "us-east-1": "abcdef",
    "us-east-2": "abc",
    "us-west-1": "ac",
    "us-west-2": "abcd",
    "eu-west-1": "abc",
    "eu-central-1": "abc",
    "ap-southeast-1": "abc",
    "ap-northeast-1": "acd",
}

# Supported DescribeInstances filter names -> how to read the value from an instance dict.
_FILTERS = {
    "instance-id": lambda i: [i["instance_id"]],
    "instance-type": lambda i: [i["instance_type"]],
    "instance-state-name": lambda i: [i["state"]["name"]],
    "instance-state-code": lambda i: [str(i["state"]["code"])],
    "availability-zone": lambda i: [i["placement"]["availability_zone"]],
    "image-id": lambda i: [i["image_id"]],
    "subnet-id": lambda i: [i["subnet_id"]] if "subnet_id" in i else [],
    "vpc-id": lambda i: [i["vpc_id"]] if "vpc_id" in i else [],
    "key-name": lambda i: [i["key_name"]] if "key_name" in i else [],
    "private-ip-address": lambda i: [i["private_ip_address"]] if "private_ip_address" in i else [],
    "private-dns-name": lambda i: [i["private_dns_name"]],
    "client-token": lambda i: [i["client_token"]],
    "tag-key": lambda i: list(i["tags"].keys()),
    "tag-value": lambda i: list(i["tags"].values()),
    "instance.group-id": lambda i: [g["group_id"] for g in i["security_groups"]],
    "instance.group-name": lambda i: [g["group_name"] for g in i["security_groups"]],
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY,
    region TEXT NOT NULL,
    seq INTEGER NOT NULL,
    instance_type TEXT NOT NULL,
    image_id TEXT NOT NULL,
    key_name TEXT,
    availability_zone TEXT NOT NULL,
    subnet_id TEXT NOT NULL,
    vpc_id TEXT NOT NULL,
    private_ip TEXT NOT NULL,
    security_groups TEXT NOT NULL,
    user_data TEXT,
    client_token TEXT NOT NULL,
    ami_launch_index INTEGER NOT NULL,
    launch_time REAL NOT NULL,
    state TEXT NOT NULL,
    state_since REAL NOT NULL,
    transition_seconds REAL NOT NULL,
    state_reason TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS instances_region ON instances (region, state);
CREATE INDEX IF NOT EXISTS instances_token ON instances (region, client_token);
CREATE TABLE IF NOT EXISTS failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    code TEXT NOT NULL,
    operation TEXT NOT NULL,
    remaining INTEGER,
    probability REAL,
    message TEXT
);
CREATE TABLE IF NOT EXISTS failure_counters (
    rule_key TEXT PRIMARY KEY,
    used INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class EC2Error(Exception):
    """An EC2 API error, shaped like ``botocore.exceptions.ClientError``.

    ``code``: EC2 error code (``InsufficientInstanceCapacity``, ``RequestLimitExceeded``,
    ``Unavailable``, ``InvalidParameterValue``, ``InvalidInstanceID.NotFound``,
    ``IdempotentParameterMismatch`` ...). ``operation``: API operation name (``RunInstances``).
    :meth:`to_result` gives the keys amazon.aws' ``fail_json_aws`` adds to a failed result.
    """

    def __init__(self, code, operation, message, http_status=400):
        self.code = code
        self.operation = operation
        self.message = message
        self.http_status = http_status
        super(EC2Error, self).__init__(str(self))

    def __str__(self):
        return "An error occurred (%s) when calling the %s operation: %s" % (self.code, self.operation, self.message)

    def to_result(self):
        return {
            "error": {"code": self.code, "message": self.message},
            "response_metadata": {"http_status_code": self.http_status},
        }


class MockConfigError(ValueError):
    """Invalid mock configuration (``mock`` option / constructor arguments); message names the field."""


def default_store_path():
    """``$K3S_AUTOSCALER_EC2_STORE`` or ``~/.cache/k3s-autoscaler/ec2.sqlite`` (expanded)."""
    return os.path.expanduser(os.environ.get(STORE_ENV) or DEFAULT_STORE)


def format_time(epoch):
    """Epoch seconds -> ISO 8601 UTC with whole seconds, as boto3 datetimes serialise in amazon.aws
    output: ``2026-11-30T08:00:00+00:00``."""
    dt = datetime.datetime.fromtimestamp(int(epoch), tz=datetime.timezone.utc)
    return dt.isoformat()


def region_azs(region):
    """Availability zone names of ``region`` (round-robin order for launches)."""
    return [region + s for s in REGION_AZ_SUFFIXES.get(region, "abc")]


def _hexdigest(*parts):
    return hashlib.sha256("/".join(parts).encode("utf-8")).hexdigest()


def _validate_failure(rule, where):
    code = rule.get("code")
    if code not in FAILURE_CODES:
        raise MockConfigError("%s: code must be one of %s, got %r" % (where, ", ".join(FAILURE_CODES), code))
    operation = rule.get("operation") or "any"
    if operation not in FAILURE_OPERATIONS:
        raise MockConfigError(
            "%s: operation must be one of %s, got %r" % (where, ", ".join(FAILURE_OPERATIONS), operation)
        )
    probability = rule.get("probability")
    next_calls = rule.get("next_calls")
    if (probability is None) == (next_calls is None):
        raise MockConfigError("%s: set exactly one of probability (0-1) or next_calls (int >= 1)" % where)
    if probability is not None:
        try:
            probability = float(probability)
        except (TypeError, ValueError):
            raise MockConfigError("%s: probability must be a number between 0 and 1, got %r" % (where, probability))
        if not 0.0 <= probability <= 1.0:
            raise MockConfigError(
                "%s: probability is a ratio between 0 and 1 (not a percent), got %r" % (where, probability)
            )
    if next_calls is not None:
        if isinstance(next_calls, bool) or not isinstance(next_calls, int) or next_calls < 1:
            raise MockConfigError("%s: next_calls must be an integer >= 1, got %r" % (where, next_calls))
    return {
        "code": code,
        "operation": operation,
        "probability": probability,
        "next_calls": next_calls,
        "message": rule.get("error_message") or rule.get("message"),
    }


def normalize_filters(filters):
    """amazon.aws-style filter dict -> ``{name: [str, ...]}``.

    Like amazon.aws ``find_instances``, ``_`` in non-tag names becomes ``-``
    (``instance_state_name`` == ``instance-state-name``); scalar values become one-item lists.
    Raises ``EC2Error(InvalidParameterValue)`` for a filter name the mock does not support.
    """
    out = {}
    for key, value in (filters or {}).items():
        name = key if key.startswith("tag:") else key.replace("_", "-")
        if not name.startswith("tag:") and name not in _FILTERS:
            raise EC2Error(
                "InvalidParameterValue",
                "DescribeInstances",
                "The filter '%s' is invalid (the k3s.autoscaler EC2 mock supports: tag:<key>, %s)"
                % (key, ", ".join(sorted(_FILTERS))),
            )
        values = value if isinstance(value, (list, tuple)) else [value]
        out[name] = ["true" if v is True else "false" if v is False else str(v) for v in values]
    return out


def match_filters(instance, filters):
    """True when ``instance`` (API dict) matches every normalised filter (values OR-ed; ``*``/``?``
    wildcards as in EC2)."""
    for name, values in filters.items():
        if name.startswith("tag:"):
            key = name[4:]
            have = [instance["tags"][key]] if key in instance["tags"] else []
        else:
            have = _FILTERS[name](instance)
        if not any(fnmatch.fnmatchcase(h, v) for h in have for v in values):
            return False
    return True


def validate_launch_spec(spec):
    """Raise ``EC2Error`` (``InvalidParameterValue``/``MissingParameter``, operation RunInstances) unless
    ``spec`` has an ``instance_type`` from the instance-type table and an ``image_id``."""
    instance_type = spec.get("instance_type")
    if not instance_type:
        raise EC2Error(
            "MissingParameter",
            "RunInstances",
            "The request must contain the parameter InstanceType (instance_type) when launching instances",
        )
    if instance_type not in INSTANCE_TYPES:
        raise EC2Error(
            "InvalidParameterValue",
            "RunInstances",
            "Invalid value '%s' for InstanceType. The k3s.autoscaler EC2 mock knows: %s"
            % (instance_type, ", ".join(known_instance_types())),
        )
    if not spec.get("image_id"):
        raise EC2Error(
            "MissingParameter", "RunInstances", "The request must contain the parameter ImageId (image_id) when launching instances"
        )


class MockEC2(object):
    """The mock EC2 API for one region on one SQLite store.

    :param store: SQLite path; ``None`` -> :func:`default_store_path`. Parent dirs are created.
    :param region: AWS region name, e.g. ``us-east-1``; instances are per region as in EC2.
    :param boot_seconds: seconds an instance stays ``pending`` after launch/start (>= 0).
    :param shutdown_seconds: seconds in ``shutting-down``/``stopping`` before ``terminated``/``stopped``.
    :param latency_seconds: sleep before every API call (>= 0).
    :param failures: list of failure rules ``{code, operation, probability | next_calls, error_message?}``
        applied on top of the persistent schedule (see :meth:`inject_failure`). ``next_calls`` here
        is counted in the store per distinct rule, so re-passing the same rule each run fails only
        the first N calls overall (reset with :meth:`clear_failures`).
    :param seed: seed for the probability draws (``None`` -> OS entropy).
    :param clock: ``() -> epoch seconds`` (default ``time.time``); tests inject a fake clock.
    :param sleep: ``(seconds) -> None`` (default ``time.sleep``); used by latency and :meth:`wait_for`.
    :param read_only: when the store file does not exist, work on an empty in-memory store instead of
        creating it (used by check mode).
    """

    def __init__(
        self,
        store=None,
        region="us-east-1",
        boot_seconds=DEFAULT_BOOT_SECONDS,
        shutdown_seconds=DEFAULT_SHUTDOWN_SECONDS,
        latency_seconds=0.0,
        failures=None,
        seed=None,
        clock=None,
        sleep=None,
        read_only=False,
    ):
        if not region:
            raise MockConfigError("region is required (e.g. us-east-1)")
        for name, value in (
            ("boot_seconds", boot_seconds),
            ("shutdown_seconds", shutdown_seconds),
            ("latency_seconds", latency_seconds),
        ):
            if value is None or float(value) < 0:
                raise MockConfigError("mock.%s must be a number of seconds >= 0, got %r" % (name, value))
        self.store = os.path.expanduser(store) if store else default_store_path()
        self.region = region
        self.boot_seconds = float(boot_seconds)
        self.shutdown_seconds = float(shutdown_seconds)
        self.latency_seconds = float(latency_seconds)
        self.failures = [_validate_failure(f, "mock.failures[%d]" % n) for n, f in enumerate(failures or [])]
        self._rng = random.Random(seed)
        self._clock = clock or time.time
        self._sleep = sleep or time.sleep
        if read_only and not os.path.exists(self.store):
            self._conn = self._connect(":memory:")
        else:
            parent = os.path.dirname(os.path.abspath(self.store))
            if not os.path.isdir(parent):
                os.makedirs(parent)
            self._conn = self._connect(self.store)

    # ------------------------------------------------------------------ storage

    @staticmethod
    def _connect(path):
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000.0, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = %d" % BUSY_TIMEOUT_MS)
        for attempt in range(50):
            try:
                if path != ":memory:":
                    conn.execute("PRAGMA journal_mode = WAL")
                    conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for stmt in _SCHEMA.split(";"):
                        if stmt.strip():
                            conn.execute(stmt)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                return conn
            except sqlite3.OperationalError as e:
                # concurrent first-time creation: journal_mode switch can report "locked" immediately
                if "locked" not in str(e) or attempt == 49:
                    raise
                time.sleep(0.05)
        return conn  # pragma: no cover

    def close(self):
        self._conn.close()

    @contextlib.contextmanager
    def _tx(self):
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error): one writer at a time."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _meta_next(self, conn, key):
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        value = int(row["value"]) if row else 0
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(value + 1)))
        return value

    # ------------------------------------------------------------------ failures

    def inject_failure(self, code, operation="any", next_calls=None, probability=None, message=None):
        """Persist a failure rule in the store; it applies to every process using the store.

        ``code``: one of ``InsufficientInstanceCapacity``, ``RequestLimitExceeded``, ``Unavailable``.
        ``operation``: ``run_instances``, ``terminate_instances``, ``describe_instances``,
        ``start_instances``, ``stop_instances``, ``create_tags``, ``delete_tags`` or ``any``.
        Exactly one of ``next_calls`` (fail the next N matching calls, then the rule is spent) or
        ``probability`` (ratio 0-1 per matching call, until :meth:`clear_failures`).
        Returns the rule id.
        """
        rule = _validate_failure(
            {"code": code, "operation": operation, "next_calls": next_calls, "probability": probability, "message": message},
            "inject_failure",
        )
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT INTO failures (code, operation, remaining, probability, message) VALUES (?, ?, ?, ?, ?)",
                (rule["code"], rule["operation"], rule["next_calls"], rule["probability"], rule["message"]),
            )
            return cur.lastrowid

    def pending_failures(self):
        """The persistent failure schedule: list of dicts ``{id, code, operation, remaining, probability, message}``."""
        rows = self._conn.execute("SELECT * FROM failures ORDER BY id").fetchall()
        return [dict(r) for r in rows]

    def clear_failures(self):
        """Remove all persistent rules and reset the ``next_calls`` counters of ``mock.failures`` rules."""
        with self._tx() as conn:
            conn.execute("DELETE FROM failures")
            conn.execute("DELETE FROM failure_counters")

    def _raise(self, code, operation, message=None):
        status, default_message = _FAILURE_DEFAULTS[code]
        raise EC2Error(code, OPERATIONS[operation], message or default_message, http_status=status)

    def _api_call(self, operation):
        """Latency + failure injection for one API call of ``operation`` (committed on its own so a
        consumed ``next_calls`` counter sticks even though the call fails)."""
        if self.latency_seconds:
            self._sleep(self.latency_seconds)
        with self._tx() as conn:
            for row in conn.execute("SELECT * FROM failures ORDER BY id").fetchall():
                if row["operation"] not in ("any", operation):
                    continue
                if row["remaining"] is not None:
                    if row["remaining"] <= 1:
                        conn.execute("DELETE FROM failures WHERE id = ?", (row["id"],))
                    else:
                        conn.execute("UPDATE failures SET remaining = remaining - 1 WHERE id = ?", (row["id"],))
                    failure = (row["code"], row["message"])
                    break
                if self._rng.random() < row["probability"]:
                    failure = (row["code"], row["message"])
                    break
            else:
                failure = None
                for rule in self.failures:
                    if rule["operation"] not in ("any", operation):
                        continue
                    if rule["next_calls"] is not None:
                        key = json.dumps([rule["code"], rule["operation"], rule["next_calls"]])
                        row = conn.execute("SELECT used FROM failure_counters WHERE rule_key = ?", (key,)).fetchone()
                        used = row["used"] if row else 0
                        if used < rule["next_calls"]:
                            conn.execute(
                                "INSERT OR REPLACE INTO failure_counters (rule_key, used) VALUES (?, ?)", (key, used + 1)
                            )
                            failure = (rule["code"], rule["message"])
                            break
                    elif self._rng.random() < rule["probability"]:
                        failure = (rule["code"], rule["message"])
                        break
        if failure:
            self._raise(failure[0], operation, failure[1])

    # ------------------------------------------------------------------ state

    def _effective(self, row, now):
        """(state name, since) of a stored row at time ``now``, applying due transitions lazily."""
        state, since, secs = row["state"], row["state_since"], row["transition_seconds"]
        nxt = {"pending": "running", "shutting-down": "terminated", "stopping": "stopped"}.get(state)
        if nxt and now >= since + secs:
            return nxt, since + secs
        return state, since

    def _to_api(self, row, now):
        """Stored row -> amazon.aws ``ec2_instance`` / ``ec2_instance_info`` instance dict (snake_case)."""
        state, since = self._effective(row, now)
        region = row["region"]
        ip = row["private_ip"]
        domain = "ec2.internal" if region == "us-east-1" else "%s.compute.internal" % region
        dns = "ip-%s.%s" % (ip.replace(".", "-"), domain)
        groups = json.loads(row["security_groups"])
        vcpu = INSTANCE_TYPES.get(row["instance_type"], {"vcpu": 2})["vcpu"]
        inst = {
            "ami_launch_index": row["ami_launch_index"],
            "architecture": "x86_64",
            "block_device_mappings": [],
            "client_token": row["client_token"],
            "cpu_options": {"core_count": max(1, vcpu // 2), "threads_per_core": 2 if vcpu > 1 else 1},
            "ebs_optimized": False,
            "ena_support": True,
            "hypervisor": "xen",
            "image_id": row["image_id"],
            "instance_id": row["instance_id"],
            "instance_type": row["instance_type"],
            "launch_time": format_time(row["launch_time"]),
            "metadata_options": {
                "http_endpoint": "enabled",
                "http_put_response_hop_limit": 1,
                "http_tokens": "optional",
                "http_protocol_ipv6": "disabled",
                "instance_metadata_tags": "disabled",
                "state": "applied",
            },
            "monitoring": {"state": "disabled"},
            "placement": {"availability_zone": row["availability_zone"], "group_name": "", "tenancy": "default"},
            "private_dns_name": dns,
            "private_ip_address": ip,
            "product_codes": [],
            "public_dns_name": "",
            "root_device_name": "/dev/xvda",
            "root_device_type": "ebs",
            "security_groups": groups,
            "source_dest_check": True,
            "state": {"code": STATE_CODES[state], "name": state},
            "state_transition_reason": "",
            "subnet_id": row["subnet_id"],
            "tags": json.loads(row["tags"]),
            "virtualization_type": "hvm",
            "vpc_id": row["vpc_id"],
        }
        if row["key_name"]:
            inst["key_name"] = row["key_name"]
        if state in ("stopped", "stopping", "shutting-down", "terminated"):
            inst["state_transition_reason"] = "User initiated (%s GMT)" % format_time(since)[:19].replace("T", " ")
            inst["state_reason"] = {
                "code": "Client.UserInitiatedShutdown",
                "message": "Client.UserInitiatedShutdown: User initiated shutdown",
            }
        if state == "terminated":
            # EC2 releases the network interface of a terminated instance
            for key in ("private_ip_address", "subnet_id", "vpc_id"):
                inst.pop(key)
            inst["private_dns_name"] = ""
            inst["security_groups"] = []
        return inst

    def _rows(self, conn, instance_ids=None, all_regions=False):
        sql, args = "SELECT * FROM instances", []
        clauses = []
        if not all_regions:
            clauses.append("region = ?")
            args.append(self.region)
        if instance_ids:
            clauses.append("instance_id IN (%s)" % ",".join("?" * len(instance_ids)))
            args.extend(instance_ids)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        return conn.execute(sql + " ORDER BY seq", args).fetchall()

    def _select(self, conn, instance_ids=None, filters=None, include_expired=False, all_regions=False):
        """Matching (row, api_dict) pairs. Unknown ``instance_ids`` -> ``InvalidInstanceID.NotFound``."""
        now = self._clock()
        flt = normalize_filters(filters)
        ids = list(instance_ids or [])
        for iid in ids:
            if not (isinstance(iid, str) and iid.startswith("i-") and len(iid) in (10, 19)):
                raise EC2Error(
                    "InvalidInstanceID.Malformed", "DescribeInstances", 'Invalid id: "%s" (expected i-<17 hex digits>)' % iid
                )
        rows = self._rows(conn, ids, all_regions=all_regions)
        out = []
        found = set()
        for row in rows:
            inst = self._to_api(row, now)
            state, since = self._effective(row, now)
            if state == "terminated" and not include_expired and now - since > TERMINATED_VISIBLE_SECONDS:
                continue
            found.add(row["instance_id"])
            if match_filters(inst, flt):
                out.append((row, inst))
        missing = [i for i in ids if i not in found]
        if missing:
            raise EC2Error(
                "InvalidInstanceID.NotFound",
                "DescribeInstances",
                "The instance IDs '%s' do not exist in region %s" % (", ".join(missing), self.region),
            )
        return out

    def _set_state(self, conn, instance_id, state, now, seconds):
        conn.execute(
            "UPDATE instances SET state = ?, state_since = ?, transition_seconds = ? WHERE instance_id = ?",
            (state, now, seconds, instance_id),
        )

    # ------------------------------------------------------------------ reads

    def describe_instances(self, instance_ids=None, filters=None):
        """DescribeInstances: list of instance dicts (amazon.aws shape) in launch order.

        ``filters``: dict of EC2 filter name -> value or list of values (see module docs for the
        supported names). Subject to latency and failure injection (operation ``describe_instances``).
        """
        self._api_call("describe_instances")
        with self._tx() as conn:
            return [inst for _row, inst in self._select(conn, instance_ids, filters)]

    def list_instances(self, filters=None, instance_ids=None, include_expired=False, all_regions=False):
        """Like :meth:`describe_instances` but a back door for simulator code: no latency, no failure
        injection. ``include_expired`` also returns instances terminated more than an hour ago;
        ``all_regions`` lists every region in the store."""
        with self._tx() as conn:
            return [
                inst
                for _row, inst in self._select(
                    conn, instance_ids, filters, include_expired=include_expired, all_regions=all_regions
                )
            ]

    def user_data(self, instance_id):
        """The ``user_data`` string given at launch (``None`` if none), any region, any state.

        EC2 only returns user data via DescribeInstanceAttribute; the local cluster's fake kubelet
        reads it here. Raises ``EC2Error(InvalidInstanceID.NotFound)`` for an unknown id.
        """
        row = self._conn.execute("SELECT user_data FROM instances WHERE instance_id = ?", (instance_id,)).fetchone()
        if row is None:
            raise EC2Error(
                "InvalidInstanceID.NotFound",
                "DescribeInstanceAttribute",
                "The instance ID '%s' does not exist in store %s" % (instance_id, self.store),
            )
        return row["user_data"]

    def wait_for(self, instance_ids, state, timeout, poll_seconds=1.0):
        """Poll (via the injectable clock/sleep) until every instance is in ``state``
        (``running``, ``stopped``, ``terminated``). Returns True, or False on ``timeout`` seconds."""
        deadline = self._clock() + timeout
        while True:
            insts = self.list_instances(instance_ids=instance_ids, include_expired=True)
            if all(i["state"]["name"] == state for i in insts):
                return True
            now = self._clock()
            if now >= deadline:
                return False
            self._sleep(min(poll_seconds, max(deadline - now, 0.01)))

    # ------------------------------------------------------------------ writes

    def _subnet(self, conn, az=None, subnet_id=None):
        """(availability_zone, subnet_id, vpc_id, cidr_slot) for a launch."""
        azs = region_azs(self.region)
        vpc_id = "vpc-" + _hexdigest("vpc", self.region)[:17]
        if subnet_id:
            h = int(_hexdigest("subnet", self.region, subnet_id)[:8], 16)
            return azs[h % len(azs)], subnet_id, vpc_id, 8 + h % 8
        if az is None:
            az = azs[self._meta_next(conn, "az_rr:" + self.region) % len(azs)]
        elif az not in azs:
            raise EC2Error(
                "InvalidParameterValue",
                "RunInstances",
                "Invalid availability zone: [%s] (region %s has %s)" % (az, self.region, ", ".join(azs)),
            )
        return az, "subnet-" + _hexdigest("subnet", az)[:17], vpc_id, azs.index(az)

    def _allocate_ip(self, conn, subnet_id, slot):
        """Lowest free address in the subnet's /20 (10.0.<16*slot>.0/20), skipping the 4 AWS-reserved
        first addresses; addresses of terminated instances are reused."""
        used = set(
            r["private_ip"]
            for r in conn.execute(
                "SELECT private_ip FROM instances WHERE region = ? AND subnet_id = ? AND state != 'terminated'",
                (self.region, subnet_id),
            )
        )
        base = 16 * slot
        for n in range(4, 4095):
            ip = "10.0.%d.%d" % (base + n // 256, n % 256)
            if ip not in used:
                return ip
        raise EC2Error(
            "InsufficientFreeAddressesInSubnet",
            "RunInstances",
            "The specified subnet %s does not have enough free addresses to satisfy the request." % subnet_id,
        )

    def _launch(self, conn, count, spec, client_token, now):
        validate_launch_spec(spec)
        instance_type = spec["instance_type"]
        image_id = spec["image_id"]
        groups = []
        for g in spec.get("security_groups") or ["default"]:
            if g.startswith("sg-"):
                groups.append({"group_id": g, "group_name": g})
            else:
                groups.append({"group_id": "sg-" + _hexdigest("sg", self.region, g)[:17], "group_name": g})
        launched = []
        for index in range(count):
            az, subnet_id, vpc_id, slot = self._subnet(conn, spec.get("availability_zone"), spec.get("subnet_id"))
            iid = "i-" + uuid.uuid4().hex[:17]
            conn.execute(
                "INSERT INTO instances (instance_id, region, seq, instance_type, image_id, key_name, availability_zone,"
                " subnet_id, vpc_id, private_ip, security_groups, user_data, client_token, ami_launch_index,"
                " launch_time, state, state_since, transition_seconds, tags)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
                (
                    iid,
                    self.region,
                    self._meta_next(conn, "seq"),
                    instance_type,
                    image_id,
                    spec.get("key_name"),
                    az,
                    subnet_id,
                    vpc_id,
                    self._allocate_ip(conn, subnet_id, slot),
                    json.dumps(groups),
                    spec.get("user_data"),
                    client_token,
                    index,
                    now,
                    now,
                    self.boot_seconds,
                    json.dumps(dict(spec.get("tags") or {}), sort_keys=True),
                ),
            )
            launched.append(iid)
        return launched

    def run_instances(self, count, spec, client_token=None, dry_run=False):
        """RunInstances: launch ``count`` instances in state ``pending``.

        ``spec`` keys: ``instance_type`` (required, must be in the instance-type table), ``image_id``
        (required), ``tags`` (dict), ``user_data`` (str), ``key_name``, ``subnet_id``,
        ``availability_zone``, ``security_groups`` (list of names or sg- ids).
        ``client_token``: EC2 idempotency token; a repeat call with the same token returns the
        instances of the first call without launching (``IdempotentParameterMismatch`` if count,
        instance_type or image_id differ). ``None`` -> a fresh uuid, like amazon.aws.
        ``dry_run``: validate and return ``([], False)`` without a call.
        Returns ``(instances, launched)``: the API dicts and whether anything was launched.
        """
        if not isinstance(count, int) or count < 1:
            raise EC2Error("InvalidParameterValue", "RunInstances", "MinCount/MaxCount (count) must be >= 1, got %r" % (count,))
        validate_launch_spec(spec)
        if dry_run:
            return [], False
        self._api_call("run_instances")
        token = client_token or uuid.uuid4().hex
        with self._tx() as conn:
            now = self._clock()
            existing = [r for r in self._rows(conn) if r["client_token"] == token]
            if existing:
                first = existing[0]
                if (
                    len(existing) != count
                    or first["instance_type"] != spec.get("instance_type")
                    or first["image_id"] != spec.get("image_id")
                ):
                    raise EC2Error(
                        "IdempotentParameterMismatch",
                        "RunInstances",
                        "The client token %s was already used with different parameters "
                        "(%d x %s %s)" % (token, len(existing), first["instance_type"], first["image_id"]),
                    )
                return [self._to_api(r, now) for r in existing], False
            ids = self._launch(conn, count, spec, token, now)
            return [inst for _r, inst in self._select(conn, instance_ids=ids, include_expired=True)], True

    def terminate_instances(self, instance_ids, dry_run=False):
        """TerminateInstances: live instances go to ``shutting-down`` (then ``terminated`` after
        ``shutdown_seconds``). Returns the ids whose state changed (already shutting-down/terminated
        ones are not changes). ``dry_run`` computes the same list without writing or a failure check."""
        if not instance_ids:
            return []
        if not dry_run:
            self._api_call("terminate_instances")
        with self._tx() as conn:
            now = self._clock()
            changed = []
            for row, inst in self._select(conn, instance_ids=instance_ids, include_expired=True):
                if inst["state"]["name"] in ("shutting-down", "terminated"):
                    continue
                changed.append(row["instance_id"])
                if not dry_run:
                    self._set_state(conn, row["instance_id"], "shutting-down", now, self.shutdown_seconds)
            return changed

    def stop_instances(self, instance_ids, dry_run=False):
        """StopInstances: ``pending``/``running`` -> ``stopping`` (-> ``stopped`` after ``shutdown_seconds``).
        Returns changed ids. Terminated instances -> ``IncorrectInstanceState``."""
        return self._transition(instance_ids, "stop_instances", ("pending", "running"), ("stopping", "stopped"), "stopping", dry_run)

    def start_instances(self, instance_ids, dry_run=False):
        """StartInstances: ``stopped`` -> ``pending`` (-> ``running`` after ``boot_seconds``). Returns changed ids."""
        return self._transition(instance_ids, "start_instances", ("stopped",), ("pending", "running"), "pending", dry_run)

    def _transition(self, instance_ids, operation, from_states, done_states, new_state, dry_run):
        if not instance_ids:
            return []
        if not dry_run:
            self._api_call(operation)
        with self._tx() as conn:
            now = self._clock()
            changed = []
            for row, inst in self._select(conn, instance_ids=instance_ids, include_expired=True):
                name = inst["state"]["name"]
                if name in done_states:
                    continue
                if name not in from_states:
                    raise EC2Error(
                        "IncorrectInstanceState",
                        OPERATIONS[operation],
                        "The instance '%s' is not in a state from which it can be %s (state %s)."
                        % (row["instance_id"], "started" if new_state == "pending" else "stopped", name),
                    )
                changed.append(row["instance_id"])
                if not dry_run:
                    # materialise a due pending->running before stopping
                    secs = self.boot_seconds if new_state == "pending" else self.shutdown_seconds
                    self._set_state(conn, row["instance_id"], new_state, now, secs)
            return changed

    def set_tags(self, instance_ids, tags, purge_tags=False, dry_run=False):
        """CreateTags/DeleteTags: make each instance's tags ``tags`` (``purge_tags`` removes keys not in
        ``tags``; otherwise existing other keys are kept). Returns ids whose tags changed."""
        changed = []
        if not instance_ids:
            return changed
        want = dict((k, str(v)) for k, v in (tags or {}).items())
        with self._tx() as conn:
            for row, inst in self._select(conn, instance_ids=instance_ids, include_expired=True):
                have = inst["tags"]
                new = dict(want) if purge_tags else dict(have, **want)
                if new != have:
                    changed.append((row["instance_id"], new))
        if changed and not dry_run:
            self._api_call("create_tags")
            with self._tx() as conn:
                for iid, new in changed:
                    conn.execute("UPDATE instances SET tags = ? WHERE instance_id = ?", (json.dumps(new, sort_keys=True), iid))
        return [iid for iid, _new in changed]

    def enforce_count(self, exact_count, filters, spec, dry_run=False):
        """Atomically make the number of live instances matching ``filters`` equal ``exact_count``.

        Counting, deciding and launching/terminating happen in ONE ``BEGIN IMMEDIATE`` transaction,
        so concurrent callers are serialised and never overshoot. Only instances in
        pending/running/stopping/stopped count (unless ``filters`` has ``instance-state-name``).
        Scale-down terminates the oldest first (by launch_time, then launch order), like amazon.aws.

        Returns ``{"before": [ids], "launched": [ids], "terminated": [ids], "instances": [dicts]}``
        where ``instances`` are all matching instances after the change (before it in dry_run).
        """
        if not isinstance(exact_count, int) or exact_count < 0:
            raise EC2Error("InvalidParameterValue", "RunInstances", "exact_count must be an integer >= 0, got %r" % (exact_count,))
        flt = dict(normalize_filters(filters))
        flt.setdefault("instance-state-name", list(LIVE_STATES))
        # the describe call, then (maybe) the run/terminate call, as amazon.aws does them
        self._api_call("describe_instances")
        with self._tx() as conn:
            matches = self._select(conn, filters=flt)
        current = len(matches)
        if current == exact_count:
            return {"before": [r["instance_id"] for r, _i in matches], "launched": [], "terminated": [], "instances": [i for _r, i in matches]}
        if not dry_run:
            self._api_call("run_instances" if current < exact_count else "terminate_instances")
        with self._tx() as conn:
            now = self._clock()
            # re-count inside the write transaction: the decision and the write are atomic
            matches = self._select(conn, filters=flt)
            before = [r["instance_id"] for r, _i in matches]
            launched, terminated = [], []
            if len(matches) < exact_count:
                validate_launch_spec(spec)
                if dry_run:
                    launched = ["(would launch)"] * (exact_count - len(matches))
                else:
                    launched = self._launch(conn, exact_count - len(matches), spec, uuid.uuid4().hex, now)
            elif len(matches) > exact_count:
                oldest = sorted(matches, key=lambda m: (m[0]["launch_time"], m[0]["seq"]))
                terminated = [r["instance_id"] for r, _i in oldest[: len(matches) - exact_count]]
                if not dry_run:
                    for iid in terminated:
                        self._set_state(conn, iid, "shutting-down", now, self.shutdown_seconds)
            if dry_run:
                instances = [i for _r, i in matches]
            else:
                instances = [i for _r, i in self._select(conn, instance_ids=before + launched, include_expired=True)]
            return {"before": before, "launched": launched, "terminated": terminated, "instances": instances}


def user_data_b64(value):
    """``user_data`` as DescribeInstanceAttribute returns it (base64 text), or None."""
    if value is None:
        return None
    return base64.b64encode(value.encode("utf-8")).decode("ascii")


# ---------------------------------------------------------------------- Ansible module glue

# error context prefixes, as amazon.aws words them
_FAIL_PREFIX = {
    "RunInstances": "Failed to create new EC2 instance",
    "TerminateInstances": "Unable to terminate instances",
    "DescribeInstances": "Failed to describe instances",
    "StartInstances": "Unable to start instances",
    "StopInstances": "Unable to stop instances",
    "CreateTags": "Failed to update tags",
    "DescribeInstanceAttribute": "Failed to describe instance attributes",
}

_WAITER_STATE = {"running": "running", "started": "running", "stopped": "stopped"}

INFO_ATTRIBUTES = {
    # include_attributes name -> (result key, value getter from (ec2, instance))
    "instanceType": ("instance_type", lambda ec2, i: {"value": i["instance_type"]}),
    "userData": ("user_data", lambda ec2, i: {"value": user_data_b64(ec2.user_data(i["instance_id"]))}),
    "groupSet": ("groups", lambda ec2, i: list(i["security_groups"])),
    "disableApiTermination": ("disable_api_termination", lambda ec2, i: {"value": False}),
    "disableApiStop": ("disable_api_stop", lambda ec2, i: {"value": False}),
    "instanceInitiatedShutdownBehavior": ("instance_initiated_shutdown_behavior", lambda ec2, i: {"value": "stop"}),
    "sourceDestCheck": ("source_dest_check", lambda ec2, i: {"value": True}),
    "ebsOptimized": ("ebs_optimized", lambda ec2, i: {"value": False}),
    "rootDeviceName": ("root_device_name", lambda ec2, i: {"value": "/dev/xvda"}),
}


def aws_connection_argument_spec():
    """The amazon.aws common connection options + region. The mock accepts and ignores them so
    playbooks written for amazon.aws keep working (secrets are no_log)."""
    from ansible.module_utils.basic import env_fallback

    return dict(
        access_key=dict(
            type="str", aliases=["aws_access_key_id", "aws_access_key"], no_log=False,
            fallback=(env_fallback, ["AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY"]),
        ),
        secret_key=dict(
            type="str", aliases=["aws_secret_access_key", "aws_secret_key"], no_log=True,
            fallback=(env_fallback, ["AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY"]),
        ),
        session_token=dict(type="str", aliases=["aws_session_token"], no_log=True, fallback=(env_fallback, ["AWS_SESSION_TOKEN"])),
        profile=dict(type="str", aliases=["aws_profile"], fallback=(env_fallback, ["AWS_PROFILE", "AWS_DEFAULT_PROFILE"])),
        endpoint_url=dict(type="str", aliases=["aws_endpoint_url"], fallback=(env_fallback, ["AWS_URL"])),
        validate_certs=dict(type="bool", default=True),
        aws_ca_bundle=dict(type="path", fallback=(env_fallback, ["AWS_CA_BUNDLE"])),
        aws_config=dict(type="dict"),
        debug_botocore_endpoint_logs=dict(type="bool", default=False, fallback=(env_fallback, ["ANSIBLE_DEBUG_BOTOCORE_LOGS"])),
        region=dict(type="str", aliases=["aws_region"], fallback=(env_fallback, ["AWS_REGION", "AWS_DEFAULT_REGION"])),
    )


def mock_argument_spec():
    """The ``mock`` option (all mock-only settings)."""
    return dict(
        mock=dict(
            type="dict",
            default={},
            options=dict(
                store=dict(type="path"),
                boot_seconds=dict(type="float", default=DEFAULT_BOOT_SECONDS),
                shutdown_seconds=dict(type="float", default=DEFAULT_SHUTDOWN_SECONDS),
                latency_seconds=dict(type="float", default=0.0),
                seed=dict(type="int"),
                failures=dict(
                    type="list",
                    elements="dict",
                    default=[],
                    options=dict(
                        code=dict(type="str", required=True, choices=list(FAILURE_CODES)),
                        operation=dict(type="str", default="any", choices=list(FAILURE_OPERATIONS)),
                        probability=dict(type="float"),
                        next_calls=dict(type="int"),
                        error_message=dict(type="str"),
                    ),
                    mutually_exclusive=[["probability", "next_calls"]],
                    required_one_of=[["probability", "next_calls"]],
                ),
            ),
        )
    )


def _fail_ec2(module, err, **extra):
    prefix = _FAIL_PREFIX.get(err.operation, "EC2 call failed")
    result = err.to_result()
    result.update(extra)
    module.fail_json(msg="%s: %s" % (prefix, err), **result)


def client_from_module(module):
    """Build :class:`MockEC2` from ``region`` and the ``mock`` option; fails the module on bad config.
    Check mode never creates a missing store file."""
    region = module.params.get("region")
    if not region:
        module.fail_json(
            msg="The k3s.autoscaler EC2 mock requires a region (like amazon.aws): set the region (aws_region) "
            "option or the AWS_REGION / AWS_DEFAULT_REGION environment variable, e.g. region=us-east-1"
        )
    mock = module.params.get("mock") or {}
    try:
        return MockEC2(
            store=mock.get("store"),
            region=region,
            boot_seconds=mock.get("boot_seconds", DEFAULT_BOOT_SECONDS),
            shutdown_seconds=mock.get("shutdown_seconds", DEFAULT_SHUTDOWN_SECONDS),
            latency_seconds=mock.get("latency_seconds", 0.0),
            failures=mock.get("failures") or [],
            seed=mock.get("seed"),
            read_only=module.check_mode,
        )
    except MockConfigError as e:
        module.fail_json(msg="Invalid mock configuration: %s" % e)
    except sqlite3.Error as e:
        module.fail_json(
            msg="Cannot open the EC2 mock store %r (mock.store / $%s): %s"
            % (mock.get("store") or default_store_path(), STORE_ENV, e)
        )


def build_filters(params, region):
    """The filters amazon.aws ``ec2_instance`` derives when ``filters`` is not given: instance ids,
    else network (subnet, or the region's default VPC in the mock) + ``tag:Name`` + ``image-id``;
    always restricted to pending/running/stopping/stopped."""
    ids = params.get("instance_ids")
    if ids:
        return {"instance-id": list(ids), "instance-state-name": list(LIVE_STATES)}
    filters = {}
    if params.get("vpc_subnet_id"):
        filters["subnet-id"] = [params["vpc_subnet_id"]]
    else:
        filters["vpc-id"] = ["vpc-" + _hexdigest("vpc", region)[:17]]
    if params.get("name"):
        filters["tag:Name"] = [params["name"]]
    elif (params.get("tags") or {}).get("Name"):
        filters["tag:Name"] = [params["tags"]["Name"]]
    if params.get("image_id"):
        filters["image-id"] = [params["image_id"]]
    filters["instance-state-name"] = list(LIVE_STATES)
    return filters


def _launch_spec(params):
    tags = dict(params.get("tags") or {})
    if params.get("name"):
        tags["Name"] = params["name"]
    groups = list(params.get("security_groups") or [])
    if params.get("security_group"):
        groups = [params["security_group"]]
    return {
        "instance_type": params.get("instance_type"),
        "image_id": params.get("image_id"),
        "tags": tags,
        "user_data": params.get("user_data"),
        "key_name": params.get("key_name"),
        "subnet_id": params.get("vpc_subnet_id"),
        "availability_zone": params.get("availability_zone"),
        "security_groups": groups,
    }


def _wanted_tags(params):
    """(tags, purge_tags) to enforce on existing instances, amazon.aws ``handle_existing`` rules:
    ``name`` alone adds/updates ``Name`` without purging; no tags and no name -> no tag change."""
    tags = params.get("tags")
    purge = params.get("purge_tags")
    if params.get("name"):
        if tags is None:
            tags, purge = {}, False
        tags = dict(tags, Name=params["name"])
    return tags, purge


def _wait(module, ec2, ids, state):
    if ids and not module.check_mode:
        if not ec2.wait_for(ids, state, module.params["wait_timeout"]):
            module.warn(
                "Instances %s took too long to reach state %s (wait_timeout=%s s)"
                % (", ".join(ids), state, module.params["wait_timeout"])
            )


def _handle_existing(module, ec2, existing_ids, state):
    """Tags + state of already-existing matches. Returns (changed, msg)."""
    check = module.check_mode
    changed = False
    tags, purge = _wanted_tags(module.params)
    if tags is not None:
        changed |= bool(ec2.set_tags(existing_ids, tags, purge_tags=purge, dry_run=check))
    msg = None
    if state in ("running", "started"):
        started = ec2.start_instances(
            [i["instance_id"] for i in ec2.list_instances(instance_ids=existing_ids) if i["state"]["name"] == "stopped"],
            dry_run=check,
        )
        changed |= bool(started)
        if module.params["wait"]:
            _wait(module, ec2, existing_ids, "running")
        msg = "Instances started"
    elif state == "stopped":
        stopped = ec2.stop_instances(
            [i["instance_id"] for i in ec2.list_instances(instance_ids=existing_ids) if i["state"]["name"] in ("pending", "running")],
            dry_run=check,
        )
        changed |= bool(stopped)
        if module.params["wait"]:
            _wait(module, ec2, existing_ids, "stopped")
        msg = "Instances stopped"
    return changed, msg


def ec2_instance_main(module):
    """Everything ``k3s.autoscaler.ec2_instance`` does, mirroring amazon.aws ``ec2_instance.main``."""
    params = module.params
    state = params["state"]
    if state in ("restarted", "rebooted"):
        module.fail_json(
            msg="state=%s is not supported by the k3s.autoscaler EC2 mock; use state=stopped then state=running" % state
        )
    if params.get("instance_type") and params["instance_type"] not in INSTANCE_TYPES:
        _fail_ec2(
            module,
            EC2Error(
                "InvalidParameterValue",
                "RunInstances",
                "Invalid value '%s' for InstanceType. The k3s.autoscaler EC2 mock knows: %s"
                % (params["instance_type"], ", ".join(known_instance_types())),
            ),
        )
    ec2 = client_from_module(module)
    check = module.check_mode
    filters = params.get("filters")
    if filters is None:
        filters = build_filters(params, ec2.region)
    try:
        existing = ec2.describe_instances(filters=filters) if filters else []
        existing_ids = [i["instance_id"] for i in existing]

        if state in ("terminated", "absent"):
            if not existing:
                return dict(changed=False, msg="No matching instances found", instances=[], instance_ids=[])
            terminated = ec2.terminate_instances(existing_ids, dry_run=check)
            if params["wait"]:
                _wait(module, ec2, terminated, "terminated")
            return dict(
                changed=bool(terminated),
                msg="Instances terminated" if not check else "Would have terminated instances if not in check mode",
                terminate_success=terminated,
                terminate_failed=[],
                terminated_ids=terminated,
                instance_ids=existing_ids,
                instances=ec2.list_instances(instance_ids=existing_ids, include_expired=True),
            )

        if params.get("exact_count") is not None:
            exact = params["exact_count"]
            spec = _launch_spec(params)
            res = ec2.enforce_count(exact, filters, spec, dry_run=check)
            launched, terminated = res["launched"], res["terminated"]
            result = dict(changed=bool(launched or terminated), instance_ids=res["before"])
            if terminated:
                result["terminated_ids"] = terminated
                if check:
                    result["msg"] = "Would have terminated following instances if not in check mode %s" % terminated
                else:
                    _wait(module, ec2, terminated, "terminated")  # amazon.aws force-waits here
                    result["msg"] = "Successfully terminated instances."
            elif launched:
                if check:
                    result["msg"] = "Would have launched instances if not in check_mode."
                else:
                    result["changed_ids"] = launched
                    result["instance_ids"] = res["before"] + launched
                    result["msg"] = "Launched %d instances to reach exact_count=%d." % (len(launched), exact)
                    if params["wait"] and state in _WAITER_STATE:
                        _wait(module, ec2, launched, _WAITER_STATE[state])
            else:
                result["msg"] = "%d instances already %s, nothing to do." % (exact, state)
            remaining = [i for i in res["before"] if i not in terminated] + ([] if check else launched)
            changed, _msg = _handle_existing(module, ec2, remaining, state)
            result["changed"] |= changed
            result["instances"] = ec2.list_instances(instance_ids=result["instance_ids"], include_expired=True) if result["instance_ids"] else []
            return result

        if existing and not params.get("count"):
            changed, msg = _handle_existing(module, ec2, existing_ids, state)
            return dict(
                changed=changed,
                msg=msg or "Instances already exist",
                instance_ids=existing_ids,
                instances=ec2.list_instances(instance_ids=existing_ids, include_expired=True),
            )

        # launch
        count = params.get("count") or 1
        spec = _launch_spec(params)
        if check:
            ec2.run_instances(count, spec, dry_run=True)
            result = dict(changed=True, msg="Would have launched instances if not in check_mode.", instance_ids=existing_ids)
            result["instances"] = existing
            return result
        instances, _launched = ec2.run_instances(count, spec)
        new_ids = [i["instance_id"] for i in instances]
        if params["wait"] and state in _WAITER_STATE:
            _wait(module, ec2, new_ids, _WAITER_STATE[state])
        all_ids = existing_ids + new_ids
        result = dict(
            changed=True,
            msg="Launched %d instances." % len(new_ids),
            instance_ids=all_ids,
            instances=ec2.list_instances(instance_ids=all_ids, include_expired=True),
        )
        if existing:
            result["changed_ids"] = new_ids
        return result
    except EC2Error as e:
        _fail_ec2(module, e)
    finally:
        ec2.close()


def ec2_instance_info_main(module):
    """Everything ``k3s.autoscaler.ec2_instance_info`` does, mirroring amazon.aws ``ec2_instance_info``."""
    params = module.params
    attrs = params.get("include_attributes") or []
    unsupported = [a for a in attrs if a not in INFO_ATTRIBUTES]
    if unsupported:
        module.fail_json(
            msg="include_attributes %s not supported by the k3s.autoscaler EC2 mock (supported: %s)"
            % (", ".join(unsupported), ", ".join(sorted(INFO_ATTRIBUTES)))
        )
    ec2 = client_from_module(module)
    try:
        instances = ec2.describe_instances(instance_ids=params.get("instance_ids"), filters=params.get("filters"))
        uptime = params.get("minimum_uptime")
        if uptime:
            cutoff = format_time(ec2._clock() - 60 * int(uptime))
            instances = [i for i in instances if i["launch_time"] < cutoff]
        for inst in instances:
            if attrs:
                inst["attributes"] = dict(
                    (INFO_ATTRIBUTES[a][0], INFO_ATTRIBUTES[a][1](ec2, inst)) for a in attrs
                )
        return dict(changed=False, instances=instances)
    except EC2Error as e:
        _fail_ec2(module, e)
    finally:
        ec2.close()
