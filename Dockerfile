# Images for a class on JupyterHub (Zero to JupyterHub) or a single GPU box.
#
#   docker build --target learner -t llm-sre-labs:gpu .    # single-user image, CUDA torch
#   docker build --target grader  -t llm-sre-labs-grader . # srelab grade-class / Indexed Job
#
# The learner image holds the package and the learner notebooks only: no solutions/, no
# tests/ (the checks and the reference answers): the instructor grades submissions with the
# grader image (`srelab grade-class`, or its Kubernetes Indexed Job). The repository lives in /opt/srelab, outside
# /home/jovyan, because JupyterHub mounts each user's persistent volume over their home: files
# baked into the home would be hidden. Learners work in ~/srelab-work, on that volume.
# binder/ is the CPU-only image (repo2docker); this one takes torch's CUDA build.
FROM quay.io/jupyter/base-notebook:python-3.12 AS base
USER root
RUN apt-get update && apt-get install -y --no-install-recommends gcc redis-server tini \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/srelab
COPY pyproject.toml README.md ./
COPY labsupport ./labsupport
COPY labs ./labs
# editable: the package finds labs/ (and, in the grader, tests/) beside it in /opt/srelab
RUN python3 -m pip install --no-cache-dir torch && python3 -m pip install --no-cache-dir -e ".[lab]"

FROM base AS learner
ENV SRELAB_WORKSPACE=/home/jovyan/srelab-work
USER ${NB_UID}
# JupyterHub starts jupyterhub-singleuser; `srelab lab` copies the notebooks on first use.
CMD ["bash", "-c", "srelab lab --dir \"$SRELAB_WORKSPACE\" -- --ip=0.0.0.0 --no-browser"]

FROM base AS grader
COPY solutions ./solutions
COPY tests ./tests
RUN python3 -m pip install --no-cache-dir -e ".[dev]"
USER ${NB_UID}
ENTRYPOINT []
CMD ["srelab", "list"]
