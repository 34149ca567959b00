"""The local sandbox (`bash .ci/sandbox`) and `act`, a command line to play Teams users in it.
See README.md beside this file."""
