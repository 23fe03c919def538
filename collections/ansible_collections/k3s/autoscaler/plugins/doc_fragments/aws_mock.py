# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """Options shared by the EC2 mock modules (ec2_instance, ec2_instance_info).

    The argument specs they document are ec2_mock.aws_connection_argument_spec()
    (DOCUMENTATION) and ec2_mock.mock_argument_spec() (MOCK).
    """

    # The amazon.aws connection options: same names, aliases, types and defaults as amazon.aws;
    # all but region are accepted and ignored by the mock.
    DOCUMENTATION = r"""
options:
  region:
    description:
      - The AWS region, e.g. C(us-east-1). Instances are per region, as in EC2.
      - Required (like amazon.aws); the C(AWS_REGION) or C(AWS_DEFAULT_REGION) environment variable may be used instead.
      - Decides the availability zones (C(us-east-1a) ...) and the DNS suffix of RV(instances[].private_dns_name)
        (C(ec2.internal) in us-east-1, C(<region>.compute.internal) elsewhere).
    type: str
    aliases: [aws_region]
  access_key:
    description:
      - AWS access key ID. Accepted for compatibility with amazon.aws and ignored by the mock.
    type: str
    aliases: [aws_access_key_id, aws_access_key]
  secret_key:
    description:
      - AWS secret access key. Accepted for compatibility with amazon.aws and ignored by the mock.
    type: str
    aliases: [aws_secret_access_key, aws_secret_key]
  session_token:
    description:
      - AWS STS session token. Accepted for compatibility with amazon.aws and ignored by the mock.
    type: str
    aliases: [aws_session_token]
  profile:
    description:
      - Named AWS profile. Accepted for compatibility with amazon.aws and ignored by the mock.
    type: str
    aliases: [aws_profile]
  endpoint_url:
    description:
      - AWS endpoint URL. Accepted for compatibility with amazon.aws and ignored by the mock.
    type: str
    aliases: [aws_endpoint_url]
  validate_certs:
    description:
      - Validate AWS TLS certificates. Accepted for compatibility with amazon.aws and ignored by the mock.
    type: bool
    default: true
  aws_ca_bundle:
    description:
      - CA bundle for the AWS API. Accepted for compatibility with amazon.aws and ignored by the mock.
    type: path
  aws_config:
    description:
      - botocore configuration. Accepted for compatibility with amazon.aws and ignored by the mock.
    type: dict
  debug_botocore_endpoint_logs:
    description:
      - botocore endpoint logging. Accepted for compatibility with amazon.aws and ignored by the mock.
    type: bool
    default: false
"""

    # The mock's own settings (not an amazon.aws option); use as k3s.autoscaler.aws_mock.mock.
    MOCK = r"""
options:
  mock:
    description:
      - All settings of the mock itself, in one place. Not an amazon.aws option - remove it when switching the
        playbook to M(amazon.aws.ec2_instance) / M(amazon.aws.ec2_instance_info).
    type: dict
    default: {}
    suboptions:
      store:
        description:
          - Path of the SQLite store shared by every process using the mock.
          - Default is the C(K3S_AUTOSCALER_EC2_STORE) environment variable, else C(~/.cache/k3s-autoscaler/ec2.sqlite).
        type: path
      boot_seconds:
        description:
          - Seconds (wall clock) a launched or started instance stays C(pending) (code 0) before C(running) (code 16).
          - Stored per instance at launch/start; later calls with another value do not change it.
        type: float
        default: 20.0
      shutdown_seconds:
        description:
          - Seconds an instance stays C(shutting-down) (32) before C(terminated) (48),
            or C(stopping) (64) before C(stopped) (80).
        type: float
        default: 5.0
      latency_seconds:
        description:
          - Seconds to sleep before every mock EC2 API call.
        type: float
        default: 0.0
      seed:
        description:
          - Seed of the random draws used by O(mock.failures[].probability). Unset means OS entropy.
        type: int
      failures:
        description:
          - Failures to inject, checked on every mock API call after the persistent schedule in the store
            (see C(MockEC2.inject_failure) in C(plugins/module_utils/ec2_mock.py)).
          - A failing call fails the task like amazon.aws does, with the error code in C(error.code).
        type: list
        elements: dict
        default: []
        suboptions:
          code:
            description:
              - EC2 error code to raise.
            type: str
            required: true
            choices: [InsufficientInstanceCapacity, RequestLimitExceeded, Unavailable]
          operation:
            description:
              - API operation the rule applies to; V(any) matches every call.
            type: str
            default: any
            choices: [any, create_tags, delete_tags, describe_instances, run_instances, start_instances, stop_instances, terminate_instances]
          probability:
            description:
              - Chance per matching call, a ratio from 0 to 1 (not a percent).
              - Exactly one of O(mock.failures[].probability) and O(mock.failures[].next_calls).
            type: float
          next_calls:
            description:
              - Fail the next N matching calls. Counted in the store per distinct rule, so passing the same rule
                on every run fails only the first N calls overall, across processes.
              - Exactly one of O(mock.failures[].probability) and O(mock.failures[].next_calls).
            type: int
          error_message:
            description:
              - Error message to return; default is the message EC2 returns for O(mock.failures[].code).
            type: str
"""
