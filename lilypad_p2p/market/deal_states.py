"""Print `docs/deal-states.md`: `python -m lilypad_p2p.market.deal_states > docs/deal-states.md`.

Apart from `_deal_diagram.py` so that running it does not import the module it runs twice.
"""

from lilypad_p2p.market._deal_diagram import state_diagram

if __name__ == "__main__":
    print(state_diagram(), end="")
