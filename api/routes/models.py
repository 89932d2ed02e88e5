"""The generators this server offers."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from image2model.api.deps import AppState, app_state
from image2model.core.models import ModelsAvailable

router = APIRouter(prefix="/api/v1", tags=["generators"])


@router.get("/models/available", response_model=ModelsAvailable)
async def models_available(state: AppState = Depends(app_state)) -> ModelsAvailable:
    """Generators with their options, formats and the upload limits."""
    return state.service.models_available()
