#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ec2_instance_info
short_description: Mock of amazon.aws.ec2_instance_info backed by a local SQLite store
description:
  - Describe mock EC2 instances created by M(k3s.autoscaler.ec2_instance), with the options and return shape of
    M(amazon.aws.ec2_instance_info) for the supported subset (one DescribeInstances call per run).
  - States are computed from timestamps at read time (pending -> running after C(mock.boot_seconds) of the
    launch, etc.). Terminated instances stay visible for one hour, as in EC2.
author:
  - k3s-autoscaler developers (@k3s-autoscaler)
extends_documentation_fragment:
  - k3s.autoscaler.aws_mock
  - k3s.autoscaler.aws_mock.mock
options:
  instance_ids:
    description:
      - Only these instance IDs. An unknown ID fails with C(InvalidInstanceID.NotFound), as in EC2.
    type: list
    elements: str
    default: []
  filters:
    description:
      - DescribeInstances filters, name to value or list of values (values OR-ed, C(*)/C(?) wildcards).
      - "Supported: C(tag:<key>), C(tag-key), C(tag-value), C(instance-id), C(instance-type),
        C(instance-state-name), C(instance-state-code), C(availability-zone), C(image-id), C(subnet-id),
        C(vpc-id), C(key-name), C(private-ip-address), C(private-dns-name), C(client-token),
        C(instance.group-id), C(instance.group-name). Unknown names fail with C(InvalidParameterValue)."
      - No state filter is implied; add C(instance-state-name) to hide terminated instances.
    type: dict
    default: {}
  minimum_uptime:
    description:
      - Only instances launched more than this many minutes ago.
    type: int
    aliases: [uptime]
  include_attributes:
    description:
      - DescribeInstanceAttribute attributes to add under RV(instances[].attributes) (snake_case keys).
      - V(userData) gives C(attributes.user_data.value), the user data base64-encoded as in EC2.
      - The mock supports V(instanceType), V(userData), V(groupSet), V(disableApiTermination), V(disableApiStop),
        V(instanceInitiatedShutdownBehavior), V(sourceDestCheck), V(ebsOptimized), V(rootDeviceName); the other
        choices (kept for compatibility) fail with a message.
    type: list
    elements: str
    aliases: [attributes]
    choices:
      - instanceType
      - kernel
      - ramdisk
      - userData
      - disableApiTermination
      - instanceInitiatedShutdownBehavior
      - rootDeviceName
      - blockDeviceMapping
      - productCodes
      - sourceDestCheck
      - groupSet
      - ebsOptimized
      - sriovNetSupport
      - enclaveOptions
      - disableApiStop
"""

EXAMPLES = r"""
- name: Running workers of the pool
  k3s.autoscaler.ec2_instance_info:
    region: us-east-1
    filters:
      "tag:k3s-autoscaler/pool": workers
      instance-state-name: [pending, running]
    mock:
      store: /tmp/k3s-autoscaler/ec2.sqlite
  register: info

- name: User data of one instance (base64)
  k3s.autoscaler.ec2_instance_info:
    region: us-east-1
    instance_ids: ["{{ info.instances[0].instance_id }}"]
    include_attributes: [userData]
"""

RETURN = r"""
instances:
  description:
    - Matching instances in launch order, same shape as RV(k3s.autoscaler.ec2_instance#module:instances)
      (instance_id, instance_type, image_id, launch_time, state.code/state.name, tags, private_ip_address,
      private_dns_name, placement.availability_zone, subnet_id, vpc_id, key_name, security_groups, client_token ...).
  returned: always
  type: list
  elements: dict
  contains:
    instance_id:
      description: C(i-) followed by 17 hex digits.
      type: str
      returned: always
    instance_type:
      description: EC2 instance type.
      type: str
      returned: always
    launch_time:
      description: Launch time, ISO 8601 UTC with whole seconds.
      type: str
      returned: always
      sample: "2026-11-30T08:00:00+00:00"
    state:
      description: C(code) (0, 16, 32, 48, 64, 80) and C(name) (pending, running, shutting-down, terminated, stopping, stopped).
      type: dict
      returned: always
    tags:
      description: Tags as a key to value dict.
      type: dict
      returned: always
    private_dns_name:
      description: Private DNS name, empty once terminated.
      type: str
      returned: always
    attributes:
      description: Requested O(include_attributes), e.g. C(user_data.value) holds the base64 user data.
      type: dict
      returned: when O(include_attributes) is set
error:
  description: The EC2 error of a failed call (C(code), C(message)), as amazon.aws returns it.
  returned: on failure of the (mock) DescribeInstances call
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.k3s.autoscaler.plugins.module_utils.ec2_mock import (
    aws_connection_argument_spec,
    ec2_instance_info_main,
    mock_argument_spec,
)

INSTANCE_ATTRIBUTES = [
    "instanceType",
    "kernel",
    "ramdisk",
    "userData",
    "disableApiTermination",
    "instanceInitiatedShutdownBehavior",
    "rootDeviceName",
    "blockDeviceMapping",
    "productCodes",
    "sourceDestCheck",
    "groupSet",
    "ebsOptimized",
    "sriovNetSupport",
    "enclaveOptions",
    "disableApiStop",
]


def main():
    argument_spec = dict(
        minimum_uptime=dict(required=False, type="int", default=None, aliases=["uptime"]),
        instance_ids=dict(default=[], type="list", elements="str"),
        filters=dict(default={}, type="dict"),
        include_attributes=dict(type="list", elements="str", aliases=["attributes"], choices=INSTANCE_ATTRIBUTES),
    )
    argument_spec.update(aws_connection_argument_spec())
    argument_spec.update(mock_argument_spec())
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[["instance_ids", "filters"]],
        supports_check_mode=True,
    )
    module.exit_json(**ec2_instance_info_main(module))


if __name__ == "__main__":
    main()
