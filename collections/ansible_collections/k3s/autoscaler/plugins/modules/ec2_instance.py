#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ec2_instance
short_description: Mock of amazon.aws.ec2_instance backed by a local SQLite store
description:
  - Create, count, tag, stop, start and terminate mock EC2 instances, with the options, defaults and return
    shape of M(amazon.aws.ec2_instance) for the supported subset. A playbook runs against AWS after changing the
    FQCN to C(amazon.aws.ec2_instance), adding credentials and removing O(mock).
  - State lives in a SQLite file (O(mock.store)); every process using the same file sees the same instances.
    Reads, the C(exact_count) decision and writes run in one SQLite C(BEGIN IMMEDIATE) transaction, so
    concurrent runs never overshoot O(exact_count).
  - "State names/codes as EC2: pending 0, running 16, shutting-down 32, terminated 48, stopping 64, stopped 80.
    Transitions happen over time: pending -> running after O(mock.boot_seconds); shutting-down -> terminated
    and stopping -> stopped after O(mock.shutdown_seconds)."
  - Each run makes one DescribeInstances call, plus one RunInstances / TerminateInstances / StartInstances /
    StopInstances / CreateTags call per action taken. Unlike amazon.aws, failed calls are not retried, so
    injected failures (O(mock.failures)) always surface.
author:
  - k3s-autoscaler developers (@k3s-autoscaler)
extends_documentation_fragment:
  - k3s.autoscaler.aws_mock
  - k3s.autoscaler.aws_mock.mock
options:
  state:
    description:
      - Goal state for the instances.
      - "V(present): ensure instances exist (launch when none match). V(running)/V(started): also start stopped
        matches and, with O(wait=true), wait until C(running). V(stopped): stop matches.
        V(terminated)/V(absent): terminate matches."
      - V(restarted) and V(rebooted) are accepted for compatibility but fail with an explanatory message.
    type: str
    choices: [present, terminated, running, started, stopped, restarted, rebooted, absent]
    default: present
  instance_ids:
    description:
      - Act on these instance IDs (C(i-) + 17 hex digits) only; mutually exclusive with O(exact_count).
    type: list
    elements: str
    default: []
  count:
    description:
      - Number of instances to launch; always launches new ones. Mutually exclusive with O(exact_count).
    type: int
  exact_count:
    description:
      - How many instances matching O(filters) (or the filters derived from O(name), O(tags), O(image_id),
        O(vpc_subnet_id)) should exist. Launches or terminates to reach it; the least recently launched
        (by C(launch_time)) are terminated first.
      - Only pending/running/stopping/stopped instances count (unless O(filters) sets C(instance-state-name)).
      - Unlike amazon.aws, V(0) is honoured (terminates all matches).
      - Mutually exclusive with O(count), O(instance_ids).
    type: int
  filters:
    description:
      - DescribeInstances filters, name to value or list of values (values are OR-ed, C(*) and C(?) wildcards).
      - "Supported: C(tag:<key>), C(tag-key), C(tag-value), C(instance-id), C(instance-type),
        C(instance-state-name), C(instance-state-code), C(availability-zone), C(image-id), C(subnet-id),
        C(vpc-id), C(key-name), C(private-ip-address), C(private-dns-name), C(client-token),
        C(instance.group-id), C(instance.group-name). Unknown names fail with C(InvalidParameterValue)."
      - When not set, derived like amazon.aws from O(instance_ids), or from the network (O(vpc_subnet_id), else
        the region's default VPC), C(tag:Name) (O(name) or the C(Name) key of O(tags)) and O(image_id), restricted to
        pending/running/stopping/stopped instances.
    type: dict
  name:
    description:
      - The C(Name) tag of the instances; also used to find existing instances.
    type: str
  tags:
    description:
      - Tags (key to value) for launched instances and enforced on existing matches.
    type: dict
    aliases: [resource_tags]
  purge_tags:
    description:
      - Remove tags of existing matches that are not in O(tags). Only applies when O(tags) is set.
    type: bool
    default: true
  image_id:
    description:
      - AMI ID to launch (any string; the mock has no AMI catalogue). Required when launching.
    type: str
  instance_type:
    description:
      - Instance type to launch, one of the table in C(plugins/module_utils/instance_types.py)
        (t3.nano..t3.2xlarge, m5/c5/r5 .large..24xlarge, m6i/c6i/r6i .large..32xlarge).
        Unknown types fail with C(InvalidParameterValue).
      - Required when launching. Existing instances are not resized.
    type: str
  user_data:
    description:
      - Opaque user data stored with the instance, readable with M(k3s.autoscaler.ec2_instance_info) C(include_attributes=userData)
        (base64) or C(MockEC2.user_data(instance_id)) (plain text).
    type: str
  key_name:
    description:
      - Name of the SSH key pair, returned as RV(instances[].key_name).
    type: str
  vpc_subnet_id:
    description:
      - Subnet to launch into; also restricts which instances match. When unset, launches go round-robin over the
        region's availability zones, into the default subnet of each zone.
    type: str
    aliases: [subnet_id]
  availability_zone:
    description:
      - Availability zone to launch into instead of the round-robin, e.g. C(us-east-1b).
    type: str
  security_groups:
    description:
      - Security group names or C(sg-) IDs for launched instances (default C(default)).
    type: list
    elements: str
    default: []
  security_group:
    description:
      - A single security group name or ID; mutually exclusive with O(security_groups).
    type: str
  wait:
    description:
      - Wait for the desired state, as amazon.aws does. After a launch this means waiting until C(running)
        only for O(state=running) or O(state=started) (V(present) only waits for existence, i.e. not at all).
      - Terminations done for O(exact_count) are always waited for (as amazon.aws does).
      - Waiting polls the store once a second, bounded by O(wait_timeout); a timeout is a warning.
    type: bool
    default: true
  wait_timeout:
    description:
      - Maximum seconds to wait.
    type: int
    default: 600
notes:
  - The EC2 idempotency token (ClientToken) is not a module option in amazon.aws (it generates one per call),
    so it is not one here; every launch gets a fresh token, returned as RV(instances[].client_token).
    C(MockEC2.run_instances(..., client_token=...)) implements the EC2 ClientToken semantics for Python callers.
  - Check mode predicts C(changed) and changes no instance; it never creates a missing store file.
"""

EXAMPLES = r"""
- name: Keep exactly 3 worker nodes (terminates the oldest first when scaling down)
  k3s.autoscaler.ec2_instance:
    region: us-east-1
    name: k3s-worker
    tags:
      k3s-autoscaler/pool: workers
    instance_type: t3.medium
    image_id: ami-0123456789abcdef0
    user_data: "{{ lookup('template', 'k3s-agent-user-data.sh.j2') }}"
    exact_count: 3
    filters:
      "tag:k3s-autoscaler/pool": workers
    mock:
      store: /tmp/k3s-autoscaler/ec2.sqlite
      boot_seconds: 5
  register: workers

- name: Launch 2 more instances and wait until they are running
  k3s.autoscaler.ec2_instance:
    region: us-east-1
    name: k3s-worker
    instance_type: t3.medium
    image_id: ami-0123456789abcdef0
    count: 2
    state: running

- name: Chaos - the next RunInstances call fails with InsufficientInstanceCapacity
  k3s.autoscaler.ec2_instance:
    region: us-east-1
    name: k3s-worker
    instance_type: t3.medium
    image_id: ami-0123456789abcdef0
    exact_count: 4
    mock:
      failures:
        - code: InsufficientInstanceCapacity
          operation: run_instances
          next_calls: 1
  register: scale
  ignore_errors: true

- name: Branch on the EC2 error code
  ansible.builtin.debug:
    msg: "no capacity, try another instance type"
  when: scale is failed and scale.error.code == 'InsufficientInstanceCapacity'

- name: Terminate instances by id
  k3s.autoscaler.ec2_instance:
    region: us-east-1
    instance_ids: "{{ workers.terminated_ids | default([]) }}"
    state: absent
"""

RETURN = r"""
instance_ids:
  description: IDs of the instances matching the request (for O(exact_count) scale-down, including the terminated ones).
  returned: always
  type: list
  elements: str
  sample: ["i-0123456789abcdef0"]
changed_ids:
  description: IDs launched by this run when matching instances already existed.
  returned: when instances are launched next to existing matches
  type: list
  elements: str
  sample: ["i-0123456789abcdef1"]
terminated_ids:
  description: IDs terminated (moved to shutting-down) by this run, oldest first.
  returned: when instances are terminated
  type: list
  elements: str
  sample: ["i-0123456789abcdef2"]
terminate_success:
  description: Same as RV(terminated_ids), the amazon.aws key for O(state=absent).
  returned: when O(state=absent) or O(state=terminated) matched instances
  type: list
  elements: str
terminate_failed:
  description: Always empty (a failed TerminateInstances call fails the task).
  returned: when O(state=absent) or O(state=terminated) matched instances
  type: list
  elements: str
msg:
  description: What was done.
  returned: always
  type: str
  sample: "Successfully terminated instances."
error:
  description: The EC2 error of a failed call, as amazon.aws returns it from botocore.
  returned: on failure of a (mock) EC2 API call
  type: dict
  contains:
    code:
      description: EC2 error code, e.g. C(InsufficientInstanceCapacity), C(RequestLimitExceeded), C(Unavailable), C(InvalidParameterValue).
      type: str
      returned: always
    message:
      description: EC2 error message.
      type: str
      returned: always
instances:
  description: The matching instances after the change, in the amazon.aws (snake_case) shape.
  returned: always (empty in check mode before a first launch)
  type: list
  elements: dict
  contains:
    instance_id:
      description: C(i-) followed by 17 hex digits.
      type: str
      returned: always
      sample: i-0123456789abcdef0
    instance_type:
      description: EC2 instance type.
      type: str
      returned: always
      sample: t3.medium
    image_id:
      description: AMI ID given at launch.
      type: str
      returned: always
    launch_time:
      description: Launch time, ISO 8601 UTC with whole seconds.
      type: str
      returned: always
      sample: "2026-11-30T08:00:00+00:00"
    state:
      description: Current state, computed from timestamps at read time.
      type: dict
      returned: always
      contains:
        code:
          description: 0 pending, 16 running, 32 shutting-down, 48 terminated, 64 stopping, 80 stopped.
          type: int
          returned: always
        name:
          description: pending, running, shutting-down, terminated, stopping or stopped.
          type: str
          returned: always
    tags:
      description: Tags as a key to value dict.
      type: dict
      returned: always
    private_ip_address:
      description: Private IPv4 address in 10.0.0.0/16 (one /20 per subnet). Absent once terminated.
      type: str
      returned: unless terminated
      sample: 10.0.16.4
    private_dns_name:
      description: C(ip-10-0-16-4.ec2.internal) (us-east-1) or C(ip-...<region>.compute.internal); empty once terminated.
      type: str
      returned: always
    placement:
      description: Placement; C(availability_zone) (round-robin over the region's zones), C(tenancy) C(default), C(group_name).
      type: dict
      returned: always
    subnet_id:
      description: Subnet ID. Absent once terminated.
      type: str
      returned: unless terminated
    vpc_id:
      description: VPC ID (one default VPC per region). Absent once terminated.
      type: str
      returned: unless terminated
    key_name:
      description: Key pair name.
      type: str
      returned: when O(key_name) was given at launch
    security_groups:
      description: List of C(group_id)/C(group_name) dicts; empty once terminated.
      type: list
      elements: dict
      returned: always
    client_token:
      description: The idempotency token of the launch.
      type: str
      returned: always
    ami_launch_index:
      description: Index of the instance within its launch request.
      type: int
      returned: always
    state_transition_reason:
      description: Reason of the last user-initiated stop/terminate, else empty.
      type: str
      returned: always
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.k3s.autoscaler.plugins.module_utils.ec2_mock import (
    aws_connection_argument_spec,
    ec2_instance_main,
    mock_argument_spec,
)


def main():
    argument_spec = dict(
        state=dict(
            type="str",
            default="present",
            choices=["present", "started", "running", "stopped", "restarted", "rebooted", "terminated", "absent"],
        ),
        wait=dict(default=True, type="bool"),
        wait_timeout=dict(default=600, type="int"),
        count=dict(type="int"),
        exact_count=dict(type="int"),
        image_id=dict(type="str"),
        instance_type=dict(type="str"),
        user_data=dict(type="str"),
        vpc_subnet_id=dict(type="str", aliases=["subnet_id"]),
        availability_zone=dict(type="str"),
        security_groups=dict(default=[], type="list", elements="str"),
        security_group=dict(type="str"),
        name=dict(type="str"),
        tags=dict(type="dict", aliases=["resource_tags"]),
        purge_tags=dict(type="bool", default=True),
        filters=dict(type="dict", default=None),
        key_name=dict(type="str"),
        instance_ids=dict(default=[], type="list", elements="str"),
    )
    argument_spec.update(aws_connection_argument_spec())
    argument_spec.update(mock_argument_spec())
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[
            ["security_groups", "security_group"],
            ["availability_zone", "vpc_subnet_id"],
            ["exact_count", "count"],
            ["exact_count", "instance_ids"],
        ],
        supports_check_mode=True,
    )
    module.exit_json(**ec2_instance_main(module))


if __name__ == "__main__":
    main()
