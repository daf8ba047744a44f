"""User presence as guardd reads it (logind over the system bus; with
`[presence] input_devices = true`, the times of key presses on real input devices).

These machines run no logind and have neither /dev/input nor /dev/uinput, so what runs
here is the honest case: guardd on a private bus where nobody owns org.freedesktop.login1
says "presence": {"source": "none"} in `guardctl status` and keeps deciding verdicts.
The uinput test (a key press injected through /dev/uinput must not count) runs where the
kernel has uinput and is skipped, with that reason, where it has not. Real guardd, real
dbus-daemon, a fresh network namespace."""
import fcntl
import glob
import os
import struct
import time

import mgtest
from busfixture import GuarddOnBusTest
from mgtest import wait_for

mgtest.require_private_netns()

CTEST_LABEL = "dbus"

# linux/uinput.h and linux/input-event-codes.h
UI_SET_EVBIT = 0x40045564
UI_SET_KEYBIT = 0x40045565
UI_DEV_SETUP = 0x405C5503  # _IOW('U', 3, struct uinput_setup), 92 bytes
UI_DEV_CREATE = 0x5501
UI_DEV_DESTROY = 0x5502
EV_SYN, EV_KEY, KEY_A, BUS_USB = 0, 1, 30, 0x03


def ui_get_sysname(length):
    return (2 << 30) | (length << 16) | (ord("U") << 8) | 44


class PresenceWithoutLogind(GuarddOnBusTest):
    def test_status_says_none_and_guardd_keeps_deciding(self):
        self.start_guardd()
        status = self.ctl_json("status")
        self.assertEqual(status["presence"], {"source": "none", "active_user": None, "idle_s": None})
        self.assertIn("presence:        none (logind does not answer", self.ctl("status").stdout)
        wait_for(lambda: "logind does not answer on the system bus" in self.guardd.log(), 10,
                 "guardd to say that logind does not answer")
        # Verdicts go on: an unknown program is still held and listed.
        held = self.held_program(self.client)
        self.assertEqual(held["state"], "pending")
        self.assertTrue(self.ctl_json("status")["enforcing"])

    def test_input_devices_on_without_logind_is_still_none(self):
        config = os.path.join(self.dir, "presence.conf")
        with open(config, "w") as f:
            f.write("[presence]\ninput_devices = true\n")
        self.guardd.config = config
        self.start_guardd()
        # Input devices alone do not say whose session it is: no presence evidence.
        self.assertEqual(self.ctl_json("status")["presence"]["source"], "none")
        held = self.held_program(self.client)
        self.assertEqual(held["state"], "pending")


class UinputDoesNotCount(GuarddOnBusTest):
    def test_uinput_key_presses_do_not_count(self):
        if not os.path.exists("/dev/uinput"):
            self.skipTest("no /dev/uinput on this machine (no uinput in its kernel), so "
                          "no virtual keyboard can be made here")
        config = os.path.join(self.dir, "presence.conf")
        with open(config, "w") as f:
            f.write("[presence]\ninput_devices = true\n")
        self.guardd.config = config
        self.start_guardd()
        wait_for(lambda: "Reading key press and click times from" in self.guardd.log(), 10,
                 "guardd to read input devices")

        # A keyboard made through uinput, claiming to be a USB device: a bot's way to fake
        # a person at the keyboard.
        ui = os.open("/dev/uinput", os.O_WRONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, ui)
        fcntl.ioctl(ui, UI_SET_EVBIT, EV_KEY)
        fcntl.ioctl(ui, UI_SET_KEYBIT, KEY_A)
        setup = struct.pack("HHHH80sI", BUS_USB, 0x1234, 0x5678, 1, b"mailguard fake keyboard", 0)
        fcntl.ioctl(ui, UI_DEV_SETUP, setup)
        fcntl.ioctl(ui, UI_DEV_CREATE)
        self.addCleanup(fcntl.ioctl, ui, UI_DEV_DESTROY)
        name = bytearray(64)
        fcntl.ioctl(ui, ui_get_sysname(len(name)), name)
        sysname = name.split(b"\0", 1)[0].decode()
        events = wait_for(lambda: glob.glob(f"/sys/devices/virtual/input/{sysname}/event*"), 10,
                          "the uinput device's event node in sysfs")
        node = os.path.basename(events[0])
        wait_for(lambda: os.path.exists(f"/dev/input/{node}"), 10, f"/dev/input/{node}")
        for _ in range(3):
            now = time.time()
            sec, usec = int(now), int((now % 1) * 1e6)
            os.write(ui, struct.pack("llHHi", sec, usec, EV_KEY, KEY_A, 1))
            os.write(ui, struct.pack("llHHi", sec, usec, EV_SYN, 0, 0))
            os.write(ui, struct.pack("llHHi", sec, usec, EV_KEY, KEY_A, 0))
            os.write(ui, struct.pack("llHHi", sec, usec, EV_SYN, 0, 0))

        wait_for(lambda: f"Input device '{node}' is virtual" in self.guardd.log(), 10,
                 "guardd to see the uinput device and set it aside")
        # guardd never opened it, so none of its presses can be read as presence.
        fds = glob.glob(f"/proc/{self.daemon.pid()}/fd/*")
        targets = set()
        for fd in fds:
            try:
                targets.add(os.readlink(fd))
            except OSError:
                pass
        self.assertNotIn(f"/dev/input/{node}", targets)
        self.assertTrue(self.ctl_json("status")["enforcing"])


if __name__ == "__main__":
    mgtest.main()
