"""The ground floor: the rotation module against scipy, and the Franka and car embodiments against
the conventions they implement (DROID's state deltas, NWM's local-frame waypoint deltas)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from vjepa_wm.embodiments import Car, Franka, embodiment_from_dict, get_embodiment, rotations
from vjepa_wm.embodiments.franka import states_to_actions

RNG = np.random.default_rng(0)


def random_euler(count: int) -> np.ndarray:
    return np.stack([RNG.uniform(-math.pi, math.pi, count), RNG.uniform(-1.5, 1.5, count), RNG.uniform(-math.pi, math.pi, count)], 1)


# ---------------------------------------------------------------------------- rotations (scipy is the oracle)


def test_euler_angles_are_scipys_extrinsic_xyz_in_numpy_and_torch():
    euler = random_euler(200)
    expected = Rotation.from_euler("xyz", euler).as_matrix()
    np.testing.assert_allclose(rotations.euler_to_matrix(euler), expected, atol=1e-12)
    np.testing.assert_allclose(rotations.euler_to_matrix(torch.from_numpy(euler)).numpy(), expected, atol=1e-12)
    back = rotations.matrix_to_euler(expected)
    np.testing.assert_allclose(back, Rotation.from_matrix(expected).as_euler("xyz"), atol=1e-9)
    assert isinstance(back, np.ndarray) and isinstance(rotations.matrix_to_euler(torch.from_numpy(expected)), torch.Tensor)
    assert rotations.euler_to_matrix(euler.astype(np.float32)).dtype == np.float32  # numpy keeps its precision


def test_gimbal_lock_puts_the_whole_turn_on_yaw_and_keeps_the_rotation():
    locked = np.array([[0.3, math.pi / 2, -0.4], [0.2, -math.pi / 2, 0.1]])
    matrices = Rotation.from_euler("xyz", locked).as_matrix()
    euler = rotations.matrix_to_euler(matrices)
    assert np.allclose(euler[:, 0], 0.0)
    np.testing.assert_allclose(rotations.euler_to_matrix(euler), matrices, atol=1e-9)


def test_rotation_vectors_angles_and_quaternions_match_scipy():
    rotation = Rotation.from_euler("xyz", random_euler(100))
    for matrix, rotvec, quaternion in zip(rotation.as_matrix(), rotation.as_rotvec(), rotation.as_quat()):
        np.testing.assert_allclose(rotations.rotation_vector(matrix), rotvec, atol=1e-9)
        np.testing.assert_allclose(rotations.matrix_from_rotation_vector(rotvec), matrix, atol=1e-12)
        assert rotations.rotation_angle(matrix) == pytest.approx(np.linalg.norm(rotvec), abs=1e-9)
        ours = np.asarray(rotations.quaternion_from_matrix(matrix))
        assert min(np.abs(ours - quaternion).max(), np.abs(ours + quaternion).max()) < 1e-9  # q and -q are one rotation
        np.testing.assert_allclose(rotations.matrix_from_quaternion(quaternion), matrix, atol=1e-12)
    half_turn = Rotation.from_rotvec([0.0, math.pi, 0.0]).as_matrix()  # the sin(angle) = 0 branch
    assert np.abs(np.abs(rotations.rotation_vector(half_turn)) - [0.0, math.pi, 0.0]).max() < 1e-6


def test_wrap_angle_lands_in_minus_pi_to_pi():
    angles = np.array([0.0, math.pi, -math.pi, 3 * math.pi / 2, -7.0, 20.0])
    wrapped = rotations.wrap_angle(angles)
    assert np.all(wrapped >= -math.pi) and np.all(wrapped < math.pi)
    np.testing.assert_allclose(np.cos(wrapped), np.cos(angles), atol=1e-12)
    np.testing.assert_allclose(np.sin(wrapped), np.sin(angles), atol=1e-12)


# ---------------------------------------------------------------------------- Franka


def franka_states(count: int) -> np.ndarray:
    return np.concatenate([RNG.uniform(-0.5, 0.5, (count, 3)), random_euler(count), RNG.uniform(0, 1, (count, 1))], 1)


def test_franka_actions_are_droid_state_deltas_and_integrate_inverts_them():
    states = franka_states(50)
    actions = Franka().deltas(states)
    assert actions.shape == (49, 7)
    np.testing.assert_allclose(actions[:, :3], states[1:, :3] - states[:-1, :3], atol=1e-12)
    # Rotation part: R_{t+1} R_t^T in the base frame, as extrinsic xyz Euler (scipy as the oracle).
    delta = Rotation.from_euler("xyz", states[1:, 3:6]) * Rotation.from_euler("xyz", states[:-1, 3:6]).inv()
    np.testing.assert_allclose(Rotation.from_euler("xyz", actions[:, 3:6]).as_matrix(), delta.as_matrix(), atol=1e-9)
    rebuilt = Franka().integrate(states[:-1], actions)
    np.testing.assert_allclose(rebuilt[:, :3], states[1:, :3], atol=1e-12)
    np.testing.assert_allclose(Rotation.from_euler("xyz", rebuilt[:, 3:6]).as_matrix(),
                               Rotation.from_euler("xyz", states[1:, 3:6]).as_matrix(), atol=1e-9)
    batched = Franka().integrate(torch.from_numpy(states[:-1]), torch.from_numpy(actions))
    np.testing.assert_array_equal(batched.numpy(), rebuilt)
    np.testing.assert_array_equal(states_to_actions(states), actions)
    assert Franka().integrate(states[0], np.array([0, 0, 0, 0, 0, 0, 5.0]))[6] == 1.0  # the gripper stays in [0, 1]


def test_franka_search_box_is_the_published_one():
    franka = Franka()
    assert franka.action_high == (0.05, 0.05, 0.05, 0.1, 0.1, 0.1, 0.75) and franka.action_low == tuple(-v for v in franka.action_high)
    assert franka.searched == (True, True, True, False, False, False, True)
    assert Franka(search_rotation=True).searched == (True,) * 7
    assert franka.round_below == (0.0,) * 6 + (0.25,) and franka.translation == (0, 1, 2)
    assert franka.index("dgripper") == 6
    with pytest.raises(ValueError, match="max_step"):
        Franka(max_step=float("nan"))
    with pytest.raises(ValueError, match="pinned dimensions"):
        franka.check_pinned({7: 0.0})
    with pytest.raises(ValueError, match="finite"):
        franka.check_pinned({6: float("inf")})


# ---------------------------------------------------------------------------- car (NWM convention)


def nwm_actions(positions: np.ndarray, yaws: np.ndarray, spacing: float) -> np.ndarray:
    """NWM's per-step conditioning written out as its data code does it: each next position in the
    current pose's frame, (p - p0) . R(yaw0) with R = [[cos, -sin], [sin, cos]], divided by the
    waypoint spacing; yaw as the wrapped difference."""
    out = []
    for t in range(len(positions) - 1):
        c, s = math.cos(yaws[t]), math.sin(yaws[t])
        rotmat = np.array([[c, -s], [s, c]])
        local = (positions[t + 1] - positions[t]).dot(rotmat) / spacing
        dyaw = (yaws[t + 1] - yaws[t] + math.pi) % (2 * math.pi) - math.pi
        out.append([local[0], local[1], dyaw])
    return np.array(out)


def drive(count: int) -> tuple[np.ndarray, np.ndarray]:
    yaws = np.cumsum(RNG.normal(0.0, 0.3, count)) + 3.0  # crosses +-pi: wrapping matters
    steps = RNG.uniform(0.3, 1.2, count)[:, None] * np.stack([np.cos(yaws), np.sin(yaws)], 1)
    return np.cumsum(steps, 0) + [100.0, -40.0], yaws


def test_car_actions_are_nwm_waypoint_deltas_and_integrate_inverts_them():
    positions, yaws = drive(60)
    car = Car(waypoint_spacing=0.72)
    states = np.concatenate([positions, rotations.wrap_angle(yaws)[:, None]], 1)
    actions = car.deltas(states)
    np.testing.assert_allclose(actions, nwm_actions(positions, yaws, 0.72), atol=1e-9)
    assert actions[:, 0].mean() > 0  # driving forward along its heading
    rebuilt = car.rollout(states[0], actions)
    np.testing.assert_allclose(rebuilt[:, :2], positions, atol=1e-9)
    np.testing.assert_allclose(np.cos(rebuilt[:, 2] - yaws), 1.0, atol=1e-12)
    batched = car.integrate(torch.from_numpy(states[:-1]), torch.from_numpy(actions))
    np.testing.assert_allclose(batched.numpy(), car.integrate(states[:-1], actions), atol=1e-12)


def test_car_settings_and_records():
    car = Car(waypoint_spacing=0.25)
    assert car.state_dim == car.action_dim == 3 and car.searched == (True, True, True)
    assert car.action_low == (-2.5, -4.0, -math.pi) and car.action_high == (5.0, 4.0, math.pi)
    assert car.to_dict() == {"name": "car", "waypoint_spacing": 0.25}  # what gives its actions their meaning
    assert embodiment_from_dict(car.to_dict()) == car
    assert embodiment_from_dict(Franka().to_dict()) == Franka()
    assert car.state_problem([1.0, 2.0]) is not None and car.state_problem([1.0, 2.0, float("nan")]) is not None
    assert car.state_problem([1.0, 2.0, 0.5]) is None
    with pytest.raises(ValueError, match="unknown embodiment 'boat'"):
        get_embodiment("boat")
    with pytest.raises(ValueError, match="no setting 'speed'"):
        get_embodiment("car", speed=3)


def test_a_world_model_of_a_car_imagines_car_poses_and_keeps_its_embodiment(tmp_path):
    from vjepa_wm.world_model.ac_predictor import ACPredictor, ac_predictor_config
    from vjepa_wm.world_model.checkpoints import load_world_model, save_world_model
    from vjepa_wm.world_model.vit import VisionTransformer, encoder_config
    from vjepa_wm.world_model.world_model import WorldModel

    car = Car(waypoint_spacing=0.5)
    encoder = VisionTransformer(encoder_config("micro", "2.1"))
    predictor = ACPredictor(ac_predictor_config("micro", 96, img_size=32, action_dim=car.action_dim))
    model = WorldModel(encoder, predictor, 32, car).eval()
    z = torch.nn.functional.layer_norm(torch.randn(1, 4, 96), (96,))
    actions = torch.tensor([[[2.0, 0.0, 0.5], [1.0, 1.0, 0.0]]])
    with torch.no_grad():
        rollout = model.rollout(z, torch.zeros(1, 3), actions)
    assert rollout.latents.shape == (1, 2, 4, 96)
    assert torch.allclose(rollout.states[0], car.rollout(torch.zeros(3), actions[0]), atol=1e-6)
    save_world_model(model, tmp_path / "car")
    assert load_world_model(tmp_path / "car").embodiment == car
    with pytest.raises(ValueError, match="7-D actions"):
        WorldModel(encoder, ACPredictor(ac_predictor_config("micro", 96, img_size=32)), 32, car)
