"""Test harness: real Synapse, private PostgreSQL clusters, appservice registrations and a
real Matrix client, all on loopback."""

from .appservice import (
    AppserviceRegistration,
    DoublePuppetRegistration,
    write_double_puppet_registration,
    write_registration,
)
from .matrix_client import Invite, MatrixTestClient
from .ports import free_port
from .postgres import PostgresCluster
from .synapse import SynapseServer, synapse_python

__all__ = [
    "AppserviceRegistration",
    "DoublePuppetRegistration",
    "Invite",
    "MatrixTestClient",
    "PostgresCluster",
    "SynapseServer",
    "free_port",
    "synapse_python",
    "write_double_puppet_registration",
    "write_registration",
]
