"""Our ROS 2 interface packages as `make` builds them into the venv: franka_msgs is franka_ros2
v3.4.0's, field for field (so its type hashes, what DDS and rmw match on, equal a real robot's),
and vjepa_wm_interfaces' PlanToGoal action works between two processes over DDS on localhost.

The field orders are ../shared/reference/ros2.md §1.2's tables. The hashes were computed with the
jazzy wheels' `rosidl hash` over franka_msgs of frankarobotics/franka_ros2 at tag v3.4.0 (commit
29cb85a, branch jazzy; branch humble v2.5.0 has the same definitions), not over our files.
"""
from __future__ import annotations

import array
import json
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from action_msgs.msg import GoalStatus
from franka_msgs import action as franka_action
from franka_msgs import msg as franka_msg
from franka_msgs import srv as franka_srv
from rclpy.action import ActionClient
from rclpy.node import Node
from ros_helpers import Peer, Spinning, eventually
from sensor_msgs.msg import Image
from vjepa_wm_interfaces.action import PlanToGoal
from vjepa_wm_interfaces.msg import PinnedDimension

ROBOT_STATE = [  # §1.2, FrankaRobotState, in order
    ("header", "std_msgs/Header"),
    ("collision_indicators", "franka_msgs/CollisionIndicators"),
    ("measured_joint_state", "sensor_msgs/JointState"),
    ("desired_joint_state", "sensor_msgs/JointState"),
    ("measured_joint_motor_state", "sensor_msgs/JointState"),
    ("ddq_d", "double[7]"),
    ("dtau_j", "double[7]"),
    ("tau_ext_hat_filtered", "sensor_msgs/JointState"),
    ("elbow", "franka_msgs/Elbow"),
    ("k_f_ext_hat_k", "geometry_msgs/WrenchStamped"),
    ("o_f_ext_hat_k", "geometry_msgs/WrenchStamped"),
    ("inertia_ee", "geometry_msgs/InertiaStamped"),
    ("inertia_load", "geometry_msgs/InertiaStamped"),
    ("inertia_total", "geometry_msgs/InertiaStamped"),
    ("o_t_ee", "geometry_msgs/PoseStamped"),
    ("o_t_ee_d", "geometry_msgs/PoseStamped"),
    ("o_t_ee_c", "geometry_msgs/PoseStamped"),
    ("f_t_ee", "geometry_msgs/PoseStamped"),
    ("ee_t_k", "geometry_msgs/PoseStamped"),
    ("o_dp_ee_d", "geometry_msgs/TwistStamped"),
    ("o_dp_ee_c", "geometry_msgs/TwistStamped"),
    ("o_ddp_ee_c", "geometry_msgs/AccelStamped"),
    ("time", "double"),
    ("control_command_success_rate", "double"),
    ("robot_mode", "uint8"),
    ("current_errors", "franka_msgs/Errors"),
    ("last_motion_errors", "franka_msgs/Errors"),
]
ERRORS = """joint_position_limits_violation cartesian_position_limits_violation self_collision_avoidance_violation
joint_velocity_violation cartesian_velocity_violation force_control_safety_violation joint_reflex cartesian_reflex
max_goal_pose_deviation_violation max_path_pose_deviation_violation cartesian_velocity_profile_safety_violation
joint_position_motion_generator_start_pose_invalid joint_motion_generator_position_limits_violation
joint_motion_generator_velocity_limits_violation joint_motion_generator_velocity_discontinuity
joint_motion_generator_acceleration_discontinuity cartesian_position_motion_generator_start_pose_invalid
cartesian_motion_generator_elbow_limit_violation cartesian_motion_generator_velocity_limits_violation
cartesian_motion_generator_velocity_discontinuity cartesian_motion_generator_acceleration_discontinuity
cartesian_motion_generator_elbow_sign_inconsistent cartesian_motion_generator_start_elbow_invalid
cartesian_motion_generator_joint_position_limits_violation cartesian_motion_generator_joint_velocity_limits_violation
cartesian_motion_generator_joint_velocity_discontinuity cartesian_motion_generator_joint_acceleration_discontinuity
cartesian_position_motion_generator_invalid_frame force_controller_desired_force_tolerance_violation
controller_torque_discontinuity start_elbow_sign_inconsistent communication_constraints_violation
power_limit_violation joint_p2p_insufficient_torque_for_planning tau_j_range_violation instability_detected""".split()
SMALL_MESSAGES = {  # §1.2, "Other messages"
    "CollisionIndicators": [("is_cartesian_linear_collision", "geometry_msgs/Vector3"),
                            ("is_cartesian_angular_collision", "geometry_msgs/Vector3"),
                            ("is_cartesian_linear_contact", "geometry_msgs/Vector3"),
                            ("is_cartesian_angular_contact", "geometry_msgs/Vector3"),
                            ("is_joint_collision", "double[7]"), ("is_joint_contact", "double[7]")],
    "Elbow": [(name, "double[2]") for name in ("position", "desired_position", "commanded_position",
                                               "commanded_velocity", "commanded_acceleration")],
    "GraspEpsilon": [("inner", "double"), ("outer", "double")],
    "TargetStatus": [("status", "uint8")],
}
DONE = [("success", "boolean"), ("error", "string")]
ACTIONS = {  # §1.2, "Actions": goal, result, feedback
    "ErrorRecovery": ([], [], []),
    "Grasp": ([("width", "double"), ("epsilon", "franka_msgs/GraspEpsilon"), ("speed", "double"), ("force", "double")],
              DONE, [("current_width", "double")]),
    "Move": ([("width", "double"), ("speed", "double")], DONE, [("current_width", "double")]),
    "Homing": ([], DONE, [("current_width", "double")]),
    "PTPMotion": ([("goal_joint_configuration", "sequence<double>"), ("maximum_joint_velocities", "sequence<double>"),
                   ("goal_tolerance", "double")],
                  [("target_status", "franka_msgs/TargetStatus"), ("error_message", "string")],
                  [("target_status", "franka_msgs/TargetStatus")]),
}
SERVICES = {  # §1.2, "Services": request (every response is success, error)
    "SetCartesianStiffness": [("cartesian_stiffness", "double[6]")],
    "SetJointStiffness": [("joint_stiffness", "double[7]")],
    "SetForceTorqueCollisionBehavior": [("lower_torque_thresholds_nominal", "double[7]"),
                                        ("upper_torque_thresholds_nominal", "double[7]"),
                                        ("lower_force_thresholds_nominal", "double[6]"),
                                        ("upper_force_thresholds_nominal", "double[6]")],
    "SetFullCollisionBehavior": [(f"{bound}_{what}_thresholds_{when}", f"double[{7 if what == 'torque' else 6}]")
                                 for what in ("torque", "force") for when in ("acceleration", "nominal")
                                 for bound in ("lower", "upper")],
    "SetLoad": [("mass", "double"), ("center_of_mass", "double[3]"), ("load_inertia", "double[9]")],
    "SetTCPFrame": [("transformation", "double[16]")],
    "SetStiffnessFrame": [("transformation", "double[16]")],
}
UPSTREAM_HASHES = {
    "msg/CollisionIndicators": "RIHS01_17d02113f0e8ec3768433baafd4f27fe5eaacf95d6c21f591bf3473e541e0840",
    "msg/Elbow": "RIHS01_f54141b92a05447bfa2f993ac28c289b477358a3d543ad099e1a34c10d70d9bb",
    "msg/Errors": "RIHS01_eaf7a9752f64efac239306101020545cebebff8b5130875d95bf0ed4d8bb774d",
    "msg/FrankaRobotState": "RIHS01_fd225b337bab54d06047858c866442b98e3a882a4717cefc6ddd783fcbf17332",
    "msg/GraspEpsilon": "RIHS01_387fda91ae7324c144958fa617e7d5dc21f99d6b054b141b073ead3d082f46d3",
    "msg/TargetStatus": "RIHS01_7fee694ce8c9efcf798c0c4bb32b7f861ec90f2d954eca624a48b268241d64df",
    "srv/SetCartesianStiffness": "RIHS01_2cb30af54fcef0eba44d4736f92d42256099c62ffd00fad8d113214904aa4766",
    "srv/SetForceTorqueCollisionBehavior": "RIHS01_498692c68cbe7d868ca0b90256f9f3c7a51b44b5b33d7a39d28fc06ab01bd2e2",
    "srv/SetFullCollisionBehavior": "RIHS01_43a5dafbb96eb1bd70872cdd6db23d4bf81bfb7a03e563349974f37e89cded15",
    "srv/SetJointStiffness": "RIHS01_83d1897684cc7adcbfd8a822a2798800066b81e1e2f6169878dd8ff59e5bcb77",
    "srv/SetLoad": "RIHS01_e1f4caf6d410a1deaf51380d2180e341e68c9da27d1885aa10d5da9f79551db7",
    "srv/SetStiffnessFrame": "RIHS01_9f078fbd57c29895d045e0b37584c96f34e9875714fba47d57d0cb687592eaee",
    "srv/SetTCPFrame": "RIHS01_de6a5cb97276b9f4ec7bb7db7abbe257a384db3321072b039ce0da3d287a1462",
    "action/ErrorRecovery": "RIHS01_6c5dbf0517672f7127a92796e6a162d096e286c26f88c96177cb4c5448dfc5f5",
    "action/Grasp": "RIHS01_8e8a4bb9d96564ae56fb2d47e932c65656316f5c10365958a26df3517a06bb92",
    "action/Homing": "RIHS01_2156a4bd902561e59e6081ba94428daf9a453f960596f8b7ca12e8281e0caeeb",
    "action/Move": "RIHS01_ff1f93537cae0ce92792433e368199606771ad62bb819d78078bfe37144d3ef1",
    "action/PTPMotion": "RIHS01_79730b8e281bb30fba9c38c0cd6d59a3ec44e5ec8ea692dd8817087fc4b12b8c",
}


def fields(message_type) -> list[tuple[str, str]]:
    return list(message_type.get_fields_and_field_types().items())


@pytest.fixture
def ros():
    spinning = Spinning()
    yield spinning
    spinning.close()


def test_franka_robot_state_has_upstreams_fields_in_order():
    assert fields(franka_msg.FrankaRobotState) == ROBOT_STATE
    modes = {name: getattr(franka_msg.FrankaRobotState, f"ROBOT_MODE_{name}")
             for name in ("OTHER", "IDLE", "MOVE", "GUIDING", "REFLEX", "USER_STOPPED", "AUTOMATIC_ERROR_RECOVERY")}
    assert list(modes.values()) == list(range(7))


def test_errors_and_the_small_messages_have_upstreams_fields_in_order():
    assert len(ERRORS) == 36 and fields(franka_msg.Errors) == [(name, "boolean") for name in ERRORS]
    for name, expected in SMALL_MESSAGES.items():
        assert fields(getattr(franka_msg, name)) == expected, name
    epsilon = franka_msg.GraspEpsilon()
    assert (epsilon.inner, epsilon.outer) == (0.005, 0.005)
    status = franka_msg.TargetStatus
    assert (status.IDLE, status.EXECUTING, status.TARGET_REACHED, status.ABORTED) == (0, 1, 2, 3)


def test_actions_and_services_have_upstreams_fields_in_order():
    for name, (goal, result, feedback) in ACTIONS.items():
        action = getattr(franka_action, name)
        assert [fields(action.Goal), fields(action.Result), fields(action.Feedback)] == [goal, result, feedback], name
    for name, request in SERVICES.items():
        service = getattr(franka_srv, name)
        assert fields(service.Request) == request and fields(service.Response) == DONE, name


def test_type_hashes_equal_upstreams_as_built_and_on_the_wire(ros):
    share = Path(sys.prefix) / "share" / "franka_msgs"
    built = {}
    for interface in UPSTREAM_HASHES:
        description = json.loads((share / f"{interface}.json").read_text())
        built[interface] = next(entry["hash_string"] for entry in description["type_hashes"]
                                if entry["type_name"] == f"franka_msgs/{interface}")
    assert built == UPSTREAM_HASHES
    # What a subscriber on the robot PC would see in discovery.
    node = ros.add(Node("hash_probe", context=ros.context))
    for interface in [name for name in UPSTREAM_HASHES if name.startswith("msg/")]:
        message_type = getattr(franka_msg, interface.split("/")[1])
        topic = f"/hash_probe/{interface.split('/')[1].lower()}"
        node.create_publisher(message_type, topic, 1)
        (info,) = eventually(lambda: node.get_publishers_info_by_topic(topic), what=f"{topic} in the graph")
        assert str(info.topic_type_hash) == UPSTREAM_HASHES[interface], interface


def goal_images(rng) -> list[Image]:
    images = []
    for height, width in ((16, 20), (12, 8)):
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        images.append(Image(height=height, width=width, encoding="rgb8", step=width * 3,
                            data=array.array("B", pixels.tobytes())))
    return images


def test_plan_to_goal_round_trip_between_two_processes(ros):
    """Goal (two images, per-goal budgets, a pin) -> feedback every step -> result, with the planner in
    its own process as deployed; a goal the server refuses comes back refused."""
    peer = Peer("plan-server")
    try:
        peer.expect("ready")
        node = ros.add(Node("plan_client", context=ros.context))
        client = ActionClient(node, PlanToGoal, "plan_to_goal")
        assert client.wait_for_server(timeout_sec=10)
        eventually(lambda: node.count_publishers("/plan_to_goal/_action/feedback") > 0, what="the feedback publisher")

        images = goal_images(np.random.default_rng(3))
        goal = PlanToGoal.Goal(goal_images=images, max_steps_per_goal=[2, 3],
                               pinned=[PinnedDimension(goal_index=1, dimension=6, value=0.75)])
        feedback, done = [], threading.Event()
        sent = client.send_goal_async(goal, feedback_callback=lambda message: feedback.append(message.feedback))
        sent.add_done_callback(lambda _: done.set())
        assert done.wait(10) and sent.result().accepted
        # rclpy drops feedback that arrives after the result, so ask for the result once all came.
        eventually(lambda: len(feedback) == 5, what="five feedback messages")
        result = sent.result().get_result_async()
        eventually(result.done, what="the result")

        means = [float(np.frombuffer(image.data, np.uint8).mean()) / 255 for image in images]
        assert [f.step for f in feedback] == [1, 2, 3, 4, 5]
        assert [f.goal_index for f in feedback] == [0, 0, 1, 1, 1]
        assert [f.switched_goal for f in feedback] == [True, False, True, False, False]
        assert [f.observed_energy for f in feedback] == [means[g] / s for g, s in ((0, 1), (0, 2), (1, 3), (1, 4), (1, 5))]
        assert [f.action[6] for f in feedback] == [0.0, 0.0, 0.75, 0.75, 0.75]
        answer = result.result()
        assert answer.status == GoalStatus.STATUS_SUCCEEDED
        outcome = answer.result
        assert (outcome.outcome, outcome.stop_reason, outcome.steps, outcome.goal_index) == \
            (PlanToGoal.Result.OUTCOME_BUDGET, "step budget", 5, 1)
        assert outcome.final_energy == means[1] / 5

        done.clear()
        refused = client.send_goal_async(PlanToGoal.Goal())  # no goal images
        refused.add_done_callback(lambda _: done.set())
        assert done.wait(10) and not refused.result().accepted
        client.destroy()
    finally:
        assert peer.close() == 0
