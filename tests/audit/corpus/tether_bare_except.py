"""A nightly tether job that tries to keep going when an item fails."""

import tether

th = tether.Harness()


def process(i: int) -> int:
    return i * i


@th.function(trigger=tether.on_cron("0 3 * * *"))
def nightly(ctx: tether.SyncContext) -> int:
    done = 0
    for i in range(10):
        try:
            ctx.step.run(f"item-{i}", process, i)
            done += 1
        except:  # expect: TH307
            ctx.log.warning("item %s failed", i)
    return done
