"""Drop the per-sample event transcripts of Inspect AI logs, in place, to keep committed logs small.

Usage: python tests/data/evallogs/strip_events.py LOG.eval...  (needs inspect_ai). The samples'
input, output, messages, scores, usage and timing are kept: all that `ttc import` reads.
"""

import sys

from inspect_ai.log import read_eval_log, write_eval_log

if __name__ == "__main__":
    for path in sys.argv[1:]:
        log = read_eval_log(path)
        for sample in log.samples or []:
            sample.events = []
            sample.attachments = {}
        write_eval_log(log, path)
