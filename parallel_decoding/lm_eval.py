"""lm-evaluation-harness's CLI with this project registered as ``--model parallel_decoding``.

    python -m parallel_decoding.lm_eval --model parallel_decoding \\
        --model_args model=smollm2_135m,decoder=batch_shared --tasks gsm8k --num_fewshot 5 --batch_size 8

Every argument is lm-eval's own (``lm_eval --help``). lm-eval 0.4.x finds models only in its own tree, so this
entry point imports the registration (``evaluation/lm_harness.py``) and then hands over to ``lm_eval``'s CLI.
A configuration mistake (unknown decoder, llada without a checkpoint, loglikelihood asked of llada) prints one
line and exits 2.
"""

from __future__ import annotations

import logging

from parallel_decoding.utils.cli import exit_on_user_error

log = logging.getLogger("parallel_decoding.lm_eval")


def main() -> None:
    # lazy: lm-eval and torch load inside exit_on_user_error, so a mistake there is one line
    from lm_eval.__main__ import cli_evaluate

    # lazy: registering the model imports torch and lm-eval
    import parallel_decoding.evaluation.lm_harness  # noqa: F401  (registers --model parallel_decoding)

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with exit_on_user_error(log):
        cli_evaluate()


if __name__ == "__main__":
    main()
