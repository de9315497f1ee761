"""What a board's load sharing asks of the charger: the facade's load methods, for a runtime and a site.

A mixin of ``agent.runtime.Runtime`` and ``agent.site.Site`` (each gives ``_load_specs``,
``connector_*``, ``set_current_limit`` and ``load``), so the ``protocols/loadshare`` binding
reaches a board's connectors and its load manager only through ``ChargerService``.
"""
from __future__ import annotations

from agent.load.federation import connector_state
from agent.service import ServiceError


class LoadFacade:
    def _load_specs(self):
        from agent.load.runner import runtime_specs

        return runtime_specs(self)

    def load_connectors(self) -> list[dict]:
        out = []
        for spec in self._load_specs():
            seen = self.connector_current_a(spec.connector_id)
            out.append(connector_state(connector_id=spec.connector_id, kind=spec.kind,
                                       max_current_a=spec.max_current_a, phases=spec.phases,
                                       wants=self.connector_wants_power(spec.connector_id),
                                       current_a=max(seen[0]) if seen and seen[0] else 0.0))
        return out

    async def apply_load_shares(self, shares: dict[str, float]) -> None:
        for cid in self.connector_ids():
            if cid in shares:
                await self.set_current_limit(float(shares[cid]), connector_id=cid)

    def _load_manager(self):
        if self.load is None:
            raise ServiceError("this board is not the site's load manager (no [load] table)",
                               code=ServiceError.NOT_SUPPORTED)
        return self.load

    def load_remote_state(self, board_id: str, connectors: list[dict], *, timeout_ms: int) -> None:
        try:
            self._load_manager().remote_state(board_id, connectors, timeout_ms)
        except (KeyError, TypeError, ValueError) as exc:
            raise ServiceError(f"board {board_id}: {exc}", code=ServiceError.REJECTED) from None

    def load_remote_shares(self, board_id: str) -> dict[str, float]:
        return self._load_manager().remote_shares(board_id)
