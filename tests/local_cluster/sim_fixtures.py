"""Helpers for the simulation tests (not a conftest: tests import what they need)."""
from __future__ import annotations

from ansible_collections.k3s.autoscaler.plugins.module_utils.ec2_mock import MockEC2

from local_cluster.clock import VirtualClock
from local_cluster.kubeapi_store import ObjectStore
from local_cluster.simulation import Simulation
from local_cluster.workloads import parse_scenario

K3S_URL = "http://127.0.0.1:6443"
TOKEN = "test-token"


def scenario(workloads=None, daemonsets=None, initial_nodes=1, instance_type="m5.large", **extra):
    data = {"name": "test", "cluster": {"instance_type": instance_type, "initial_nodes": initial_nodes},
            "workloads": workloads or [], "daemonsets": daemonsets or []}
    data.update(extra)
    return parse_scenario(data)


def make_sim(tmp_path, sc=None, *, with_store=True, with_ec2=True, join_seconds=10.0, remove_grace=30.0,
             boot_seconds=5.0):
    clock = VirtualClock()
    store = ObjectStore() if with_store else None
    ec2 = MockEC2(store=str(tmp_path / "ec2.sqlite"), boot_seconds=boot_seconds, shutdown_seconds=5.0,
                  clock=clock) if with_ec2 else None
    sim = Simulation(sc or scenario(), clock, store=store, ec2=ec2, k3s_url=K3S_URL, token=TOKEN,
                     join_seconds=join_seconds, remove_grace_seconds=remove_grace, seed=1)
    sim.start()
    return sim, clock, store, ec2


def joining_user_data(url=K3S_URL, token=TOKEN):
    return f"#!/bin/sh\nexport K3S_URL={url}\nexport K3S_TOKEN='{token}'\ncurl -sfL https://get.k3s.io | sh -s - agent\n"


def launch(ec2, user_data, instance_type="m5.large"):
    instances, _ = ec2.run_instances(1, {"instance_type": instance_type, "image_id": "ami-0123456789abcdef0",
                                         "user_data": user_data, "tags": {"k3s-autoscaler/node-group": "default"}})
    return instances[0]


def advance(sim, clock, seconds, step=1.0):
    end = clock() + seconds
    while clock() < end - 1e-9:
        clock.advance(min(step, end - clock()))
        sim.tick()
