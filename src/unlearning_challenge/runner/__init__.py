"""The trust boundary: participant code runs in a confined worker process, bounded and recorded here.

- :mod:`.session`: :class:`RunSession`, ``run(job) -> RunRecord``: subreaper, fork server,
  identity, leftovers, /dev/shm;
- :mod:`.job`: the typed :class:`Job` a worker reads (JSON, validated); :mod:`.folders`: each
  run's private folder and its job;
- :mod:`.protocol`: the worker's messages (:class:`Event`, :class:`Stage`) on the control socket;
- :mod:`.outcome`: a run's status and message (the record itself, :class:`~unlearning_challenge.artifacts.RunRecord`,
  is what `ingestion.json` stores);
- :mod:`.disclosure`: what participants may read of a run (everything, or only fixed sentences);
- :mod:`.limits`: :class:`RunLimits`, the budget and the hard limits;
- :mod:`.handle`: start one worker, tell it to go, time it, stop it;
- :mod:`.worker`: the worker process itself (the only place participant code is imported);
- :mod:`.forkserver`: forks workers from a process with the libraries already imported;
- :mod:`.environment`: the worker's environment; :mod:`.isolation`: the worker's user and the
  trusted folders kept from it;
- :mod:`.landlock`: filesystem, network and signal confinement;
- :mod:`.proccap`: the seccomp filter: the cap on the processes a run may hold, and no network;
  :mod:`.reaping`: orphans and leftovers; :mod:`.guardian`: nothing of a run outlives the trusted process;
- :mod:`.shared_memory`: /dev/shm between runs;
- :mod:`.procfs`: the process table; :mod:`.hints`: hints for code from the 2023 edition.

Nothing here evaluates the model a run left, and nothing here imports the ingestion.
Submodules are imported where used (the worker imports only what it needs).
"""
