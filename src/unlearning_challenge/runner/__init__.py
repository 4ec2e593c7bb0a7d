"""The trust boundary: participant code runs in a confined worker process, bounded and recorded here.

- :mod:`.session`: start a worker (fresh or from the fork server), wait, collect, clean up;
- :mod:`.worker`: the worker process itself (the only place participant code is imported);
- :mod:`.forkserver`: forks workers from a process with the libraries already imported;
- :mod:`.isolation`: the worker's user and the trusted folders kept from it;
- :mod:`.landlock`: filesystem, network and signal confinement;
- :mod:`.proccap`: the cap on the processes a run may hold;
- :mod:`.procfs`: the process table; :mod:`.hints`: hints for code from the 2023 edition.
"""
